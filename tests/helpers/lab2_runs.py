"""The real `lab2` command in a subprocess: its environment, its output, its store and its process
group; the grid it should record, computed without any runner or tracking."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
from mlflow.tracking import MlflowClient

from lab2.core.data import load_dataset
from lab2.core.mlp import prepare_mlp_data, train_trajectories
from lab2.core.params import LAB_ITERATIONS, LAB_LRS, LAB_SEEDS
from tests.helpers.mlflow_runs import all_runs

BIN = Path(sys.executable).parent


LAB2 = str(BIN / "lab2")


# Q1: GD and SVD of two matrices; Q2: 18 cells
N_UNITS = 2 * 2 + len(LAB_LRS) * len(LAB_ITERATIONS) * len(LAB_SEEDS)


SECRET = "s3cr3t-pw"


ENV_SECRET = "env-t0ken-s3cr3t"


def lab2_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh user: no MLflow or Prefect API settings, a private Prefect
    home."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_API", "LAB2_"))
    }
    settings = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    return {**env, **settings, **extra}


def start_lab2(
    tmp_path: Path, name: str, args: list[str], api: str | None = None, **env: str
) -> subprocess.Popen:
    """`lab2 run ARGS` in its own process group, output to files NAME.out / NAME.err; its flows run
    on the Prefect server at `api` (the session's, from the `prefect_api` fixture), or on the
    temporary one lab2 boots when None."""
    out, err = (tmp_path / f"{name}.out").open("w"), (tmp_path / f"{name}.err").open("w")
    if api is not None:
        env["PREFECT_API_URL"] = api
    return subprocess.Popen(
        [LAB2, "run", *args],
        cwd=tmp_path,
        env=lab2_env(tmp_path / f"prefect-{name}", **env),
        stdout=out,
        stderr=err,
        start_new_session=True,
    )


def output(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.out").read_text() + (tmp_path / f"{name}.err").read_text()


def count_runs(db: Path, step: str | None = None, status: str | None = "FINISHED") -> int:
    """Runs in an MLflow SQLite store by lab2.step (None: pipeline parents) and status (None: any),
    read directly."""
    if not db.exists():
        return 0
    key, value = ("lab2.step", step) if step else ("lab2.role", "pipeline")
    query = (
        "select count(*) from runs r join tags t on r.run_uuid = t.run_uuid "
        "where t.key = ? and t.value = ? and r.status like ? and r.lifecycle_stage = 'active'"
    )
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5) as connection:
            return connection.execute(query, (key, value, status or "%")).fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet, or a writer holds the lock
        return 0


def wait_for(condition, timeout: float, what: str, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process group and check that every member is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    wait_for(
        lambda: not _group_alive(process.pid), 30, f"process group {process.pid} to end", every=0.1
    )


def _group_alive(pgid: int) -> bool:
    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def listening_hosts(pid: int) -> set[str]:
    """Addresses that a process and its children listen on."""
    hosts = set()
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            hosts |= {
                c.laddr.ip for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
            }
        except psutil.Error:
            continue
    return hosts


def reference_cells(
    lrs=LAB_LRS, iterations=LAB_ITERATIONS, seeds=LAB_SEEDS
) -> dict[tuple[float, int, int], dict[str, float]]:
    """A grid (the lab's by default) computed here without any runner or tracking: what a run
    records."""
    data = prepare_mlp_data(load_dataset("iris"))
    pairs = [(lr, seed) for lr in lrs for seed in seeds]
    return {
        (c.lr, c.iterations, c.seed): {
            m: getattr(c, m) for m in ("train_accuracy", "val_accuracy", "train_loss", "val_loss")
        }
        for c in train_trajectories(data, pairs, iterations)
    }


def check_store(client: MlflowClient, n_parents: int) -> list:
    """Nothing lost, nothing doubled: one FINISHED run per unit identity, none RUNNING, lab grid
    metrics exact."""
    runs = all_runs(client)
    assert [r.info.run_id for r in runs if r.info.status == "RUNNING"] == []
    assert sum(r.data.tags.get("lab2.role") == "pipeline" for r in runs) == n_parents
    finished = [r for r in runs if r.info.status == "FINISHED" and "lab2.identity" in r.data.tags]
    identities = [r.data.tags["lab2.identity"] for r in finished]
    assert len(identities) == len(set(identities)) == N_UNITS
    expected = reference_cells()
    cells = {
        (
            float(r.data.params["lr"]),
            int(r.data.params["iterations"]),
            int(r.data.params["seed"]),
        ): r
        for r in finished
        if r.data.tags["lab2.step"] == "mlp"
    }
    assert set(cells) == set(expected)
    for key, metrics in expected.items():
        assert {m: cells[key].data.metrics[m] for m in metrics} == metrics, key
    return runs


# what a user must never see: Python's warnings, a traceback, an error logged
ALARMS = re.compile(r"Warning|ERROR|Traceback")


def lab2_run(folder: Path, api: str, *args: str) -> str:
    """`lab2 run ARGS` in a fresh process on the Prefect server at `api`: its output, after
    checking it ended with 0 and said nothing alarming."""
    env = lab2_env(folder / "prefect-home", PREFECT_API_URL=api)
    done = subprocess.run(
        [LAB2, "run", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert not ALARMS.findall(said), said[-3000:]
    return done.stdout
