"""Stopping the real `lab2 run`: Ctrl-C while the grid trains, SIGTERM while its cells are logged
and while the winner model is written. Each: the process ends within 10 s with 130 or 143 and one
line saying what was kept, nothing is left RUNNING, no process it started is left, and the same
command afterwards reuses what was kept and completes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.helpers.lab2_runs import LAB2, count_runs, kill_group, output, start_lab2, wait_for

pytestmark = pytest.mark.system

QUICK_Q1 = ["--gd-epochs", "5", "--no-cell-figures"]
# 10 to 20 s of training
TRAINING = [
    "--lrs",
    "0.1",
    "--seeds",
    "0",
    "--iterations",
    "20000",
    *QUICK_Q1,
]
LOGGING = [
    "--lrs",
    "0.1",
    "--iterations",
    "10",
    "--seeds",
    *map(str, range(60)),
    "--task-runner",
    "processes",
    *QUICK_Q1,
]
SMALL = ["--lrs", "0.5", "0.05", "--iterations", "5", "20", "--seeds", "0", "1", *QUICK_Q1]


def _stop(
    tmp_path: Path,
    args: list[str],
    ready: Callable[[Path], bool],
    sig: signal.Signals,
    to_group: bool,
    api: str | None,
) -> str:
    """Start `lab2 run ARGS`, send `sig` once `ready(db)` holds (to the whole group, as a terminal's
    Ctrl-C does, or to the process alone, as `kill` does), check the stop; return the output.
    `api`: as in `start_lab2`."""
    db = tmp_path / "mlflow.db"
    run = start_lab2(tmp_path, "stopped", args, api)
    try:
        wait_for(
            lambda: ready(db) or run.poll() is not None, 300, "the stage to stop in", every=0.01
        )
        assert run.poll() is None, output(tmp_path, "stopped")[-3000:]
        started = psutil.Process(run.pid).children(recursive=True)
        sent = time.monotonic()
        os.killpg(run.pid, sig) if to_group else os.kill(run.pid, sig)
        status = run.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        kill_group(run)
    text = output(tmp_path, "stopped")
    assert status == 128 + sig and took < 10, (status, took, text[-3000:])
    assert (
        f"lab2 run: stopped ({sig.name}): " in text.splitlines()[-1]
        and "rerun the same command to go on" in text
    ), text[-2000:]
    assert count_runs(db, status="RUNNING") == 0 and count_runs(db, "mlp", status="RUNNING") == 0
    assert count_runs(db, status="KILLED") == 1  # the parent
    _, alive = psutil.wait_procs(started, timeout=10)
    assert not alive, f"left behind: {[p.cmdline() for p in alive]}"
    return text


def _rerun_completes(tmp_path: Path, args: list[str], api: str | None) -> str:
    done = start_lab2(tmp_path, "rerun", args, api)
    try:
        assert done.wait(timeout=600) == 0, output(tmp_path, "rerun")[-3000:]
    finally:
        kill_group(done)
    return output(tmp_path, "rerun")


def _q1_done(db: Path) -> bool:
    return count_runs(db, "gd-factorise") + count_runs(db, "svd-baseline") == 4


def test_ctrl_c_while_the_grid_trains_stops_in_seconds_and_a_rerun_reuses_q1(tmp_path, prefect_api):
    trained_from = []

    def training(db: Path) -> bool:  # Q1 recorded, then 3 s into the grid's training
        if not trained_from and _q1_done(db):
            trained_from.append(time.monotonic())
        return bool(trained_from) and time.monotonic() - trained_from[0] > 3

    # A terminal's Ctrl-C after `make run`: the temporary Prefect API lab2 boots is in the group and
    # gets it too.
    text = _stop(tmp_path, TRAINING, training, signal.SIGINT, to_group=True, api=None)
    assert "4 finished runs kept" in text and count_runs(tmp_path / "mlflow.db", "mlp") == 0
    # Q1's units do not depend on the grid: a rerun with a shorter one (and another Prefect API)
    # still reuses them.
    assert "runs: 1 computed, 4 reused" in _rerun_completes(
        tmp_path, [*TRAINING, "--iterations", "200"], prefect_api
    )


def test_sigterm_while_cells_are_logged_keeps_every_finished_cell_for_the_rerun(
    tmp_path, prefect_api
):
    db = tmp_path / "mlflow.db"
    _stop(
        tmp_path,
        LOGGING,
        lambda db: count_runs(db, "mlp") >= 20,
        signal.SIGTERM,
        to_group=False,
        api=prefect_api,
    )
    kept = count_runs(db, "mlp")
    assert 20 <= kept < 60
    assert f"runs: {60 - kept} computed, {kept + 4} reused" in _rerun_completes(
        tmp_path, LOGGING, prefect_api
    )
    assert count_runs(db, "mlp") == 60 and count_runs(db, status="RUNNING") == 0


def _model_being_written(db: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5) as connection:
            return connection.execute("select count(*) from logged_models").fetchone()[0] > 0
    except sqlite3.OperationalError:
        return False


def test_sigterm_while_the_winner_model_is_written_leaves_no_half_model_and_the_rerun_completes(
    tmp_path, prefect_api
):
    db = tmp_path / "mlflow.db"
    _stop(tmp_path, SMALL, _model_being_written, signal.SIGTERM, to_group=False, api=prefect_api)
    with sqlite3.connect(db) as connection:
        statuses = [
            s
            for (s,) in connection.execute(
                "select status from logged_models where lifecycle_stage = 'active'"
            )
        ]
    # no model left PENDING (1): deleted as the stop unwound, or already READY (2)
    assert 1 not in statuses, statuses
    assert "runs: 0 computed, 12 reused" in _rerun_completes(tmp_path, SMALL, prefect_api)


def test_a_run_that_cannot_finish_is_refused_in_under_two_seconds(tmp_path):
    started = time.monotonic()
    done = subprocess.run(
        [LAB2, "run", "--iterations", "1000000000", "--lrs", "0.1", "--seeds", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and time.monotonic() - started < 2, (done.returncode, done.stderr)
    assert (
        done.stderr.startswith("lab2 run: bad input: est. 119 h, over LAB2_MAX_HOURS=24")
        and done.stderr.count("\n") == 1
    )
    assert list(tmp_path.iterdir()) == []


def test_the_watchdog_ends_a_stop_that_hangs_whichever_handler_runs(tmp_path):
    # Another SIGTERM handler in place (as Prefect's is while a flow runs), and one that never hands
    # the signal on.
    hangs = (
        "import signal, time\nfrom lab2.cli.stopping import stop_signals_handled\nwith "
        "stop_signals_handled():\n"
        "    signal.signal(signal.SIGTERM, lambda *_: None)\n    print('ready', flush=True)\n    "
        "time.sleep(60)\n"
    )
    python = str(Path(LAB2).with_name("python"))
    process = subprocess.Popen(
        [python, "-c", hangs],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline() == "ready\n"
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        process.kill()
    assert status == 143 and 9 < took < 13, (status, took)
    assert process.stderr.read() == "lab2 run: did not stop within 10 s: ended\n"
