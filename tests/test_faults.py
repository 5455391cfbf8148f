"""Faults on the real `lab2` command: SIGKILL halfway, two writers on one SQLite store, an MLflow
server that goes away and comes back, credentials in the tracking URI; each store checked for
loss and duplicates."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from mlflow.tracking import MlflowClient

from lab2.core.data import load_dataset
from lab2.core.mlp import prepare_mlp_data, train_trajectories
from lab2.core.params import LAB_ITERATIONS, LAB_LRS, LAB_SEEDS
from tests.conftest import all_runs
from tests.servers import request

pytestmark = pytest.mark.system

BIN = Path(sys.executable).parent
LAB2 = str(BIN / "lab2")
N_UNITS = 2 * 2 + len(LAB_LRS) * len(LAB_ITERATIONS) * len(
    LAB_SEEDS
)  # Q1: GD and SVD of two matrices; Q2: 18 cells
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


def test_sigkill_halfway_then_rerun_leaves_one_finished_run_per_cell(tmp_path, prefect_api):
    db = tmp_path / "mlflow.db"
    killed = start_lab2(tmp_path, "killed", [], prefect_api)
    try:
        wait_for(
            lambda: count_runs(db, "mlp") > 0 or killed.poll() is not None, 300, "the first cells"
        )
        assert count_runs(db, "mlp") < 18, "the grid finished before it could be killed"
    finally:
        kill_group(killed)
    done_before = count_runs(db, "mlp")

    rerun = start_lab2(tmp_path, "rerun", [], prefect_api)
    assert rerun.wait(timeout=300) == 0, output(tmp_path, "rerun")[-3000:]
    client = MlflowClient(f"sqlite:///{db}")
    runs = check_store(client, n_parents=2)
    first_parent = next(
        r
        for r in runs
        if r.data.tags.get("lab2.role") == "pipeline" and r.info.status != "FINISHED"
    )
    assert (
        first_parent.info.status == "KILLED" and "was gone" in first_parent.data.tags["lab2.stale"]
    )
    text = output(tmp_path, "rerun")
    assert "reused from earlier FINISHED runs" in text
    reused = next(
        r
        for r in runs
        if r.data.tags.get("lab2.role") == "pipeline" and r.info.status == "FINISHED"
    ).data.tags
    assert (
        int(reused["lab2.mlp_grid.units_reused"]) >= done_before
        and int(reused["lab2.mlp_grid.units_computed"]) >= 1
    )


def test_two_processes_on_one_sqlite_store_both_finish_and_a_diverging_cell_is_flagged(
    tmp_path, prefect_api
):
    args = [
        "--lrs",
        "10",
        "0.1",
        "--iterations",
        "30",
        "200",
        "--seeds",
        "0",
        "1",
        "2",
        "--gd-epochs",
        "300",
    ]
    processes = [start_lab2(tmp_path, name, args, prefect_api) for name in ("first", "second")]
    try:
        codes = [p.wait(timeout=400) for p in processes]
    finally:
        for p in processes:
            kill_group(p)
    assert codes == [0, 0], output(tmp_path, "first")[-2000:] + output(tmp_path, "second")[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = all_runs(client)
    assert [r for r in runs if r.info.status == "RUNNING"] == []
    parents = [r for r in runs if r.data.tags.get("lab2.role") == "pipeline"]
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    carried = [
        r.data.tags["lab2.identity"]
        for r in runs
        if r.info.status == "FINISHED" and "lab2.identity" in r.data.tags
    ]
    assert len(carried) == len(set(carried)) == 4 + 12
    for (
        parent
    ) in parents:  # every unit of each pipeline run: its own child or a reused run, all FINISHED
        table = pd_units(client, parent.info.run_id)
        assert len(table) == 16 and set(table["identity"]) == set(carried)
        assert all(client.get_run(run_id).info.status == "FINISHED" for run_id in table["run_id"])
    diverged = [r for r in runs if r.data.tags.get("lab2.diverged") == "true"]
    assert diverged and all(
        r.data.params["lr"] == "10.0" and "diverged" in r.data.tags["mlflow.note.content"]
        for r in diverged
    )
    assert all(
        math.isfinite(r.data.metrics["train_loss"])
        for r in runs
        if r.data.tags.get("lab2.diverged") == "false"
    )
    for name in ("first", "second"):
        assert "diverged: 6 of 12 cells" in output(tmp_path, name)


def pd_units(client: MlflowClient, run_id: str):
    import pandas as pd

    paths = sorted(a.path for a in client.list_artifacts(run_id, "units"))
    return pd.concat(
        [pd.read_csv(client.download_artifacts(run_id, p)) for p in paths], ignore_index=True
    )


class MlflowServer:
    """A real `mlflow server` on a free 127.0.0.1 port, in its own process group; restartable on the
    same store."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.root = root
        self.db = root / "server.db"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{self.db}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
        ]
        log = (self.root / "server.log").open("a")
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=lab2_env(self.root / "prefect-server"),
        )
        wait_for(self._healthy, 180, "mlflow server", every=0.2)

    def stop(self) -> None:
        if self.process is not None:
            kill_group(self.process)
            self.process = None

    def _healthy(self) -> bool:
        assert self.process.poll() is None, (self.root / "server.log").read_text()[-2000:]
        try:
            return request("GET", f"http://127.0.0.1:{self.port}/health", retry_for=0, timeout=1).ok
        except requests.RequestException:
            return False


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_server_down_fails_with_a_redacted_message_then_blips_and_a_rerun_resumes(
    tmp_path, mlflow_server, prefect_api
):
    uri = f"http://lab2user:{SECRET}@127.0.0.1:{mlflow_server.port}"
    secrets = dict(MLFLOW_TRACKING_URI=uri, MLFLOW_TRACKING_PASSWORD=ENV_SECRET)
    db = mlflow_server.db

    # 1. The server dies halfway through the grid and stays down past the retry window: lab2 fails,
    # naming it.
    first = start_lab2(
        tmp_path, "down", [], prefect_api, LAB2_TRACKING_RETRY_SECONDS="3", **secrets
    )
    try:
        wait_for(
            lambda: count_runs(db, "mlp") > 0 or first.poll() is not None, 300, "the first cells"
        )
        assert first.poll() is None, output(tmp_path, "down")[-3000:]
        mlflow_server.stop()
        assert first.wait(timeout=120) == 1
    finally:
        kill_group(first)
    text = output(tmp_path, "down")
    assert f"MLflow at http://***@127.0.0.1:{mlflow_server.port} did not answer for 3 s" in text
    assert "was not logged" in text and "finished runs are reused" in text

    # 2. Back up; a rerun loses the server for a restart's length mid-run and rides it out on
    # retries.
    mlflow_server.start()
    rerun = start_lab2(
        tmp_path, "blip", [], prefect_api, LAB2_TRACKING_RETRY_SECONDS="180", **secrets
    )
    try:
        wait_for(
            lambda: count_runs(db, status=None) >= 2 or rerun.poll() is not None,
            300,
            "the rerun's parent run",
        )
        mlflow_server.stop()
        mlflow_server.start()
        assert rerun.wait(timeout=400) == 0, output(tmp_path, "blip")[-3000:]
    finally:
        kill_group(rerun)
    client = MlflowClient(f"http://127.0.0.1:{mlflow_server.port}")
    runs = check_store(client, n_parents=2)

    # 3. Credentials: in no param, tag, artifact, store file or message.
    for run in runs:
        assert not any(
            SECRET in v or ENV_SECRET in v
            for v in [*run.data.params.values(), *run.data.tags.values()]
        )
    stored = [db, *(tmp_path / "artifacts").rglob("*")]
    assert not any(
        SECRET.encode() in p.read_bytes() or ENV_SECRET.encode() in p.read_bytes()
        for p in stored
        if p.is_file()
    )
    for name in ("down", "blip"):
        assert SECRET not in output(tmp_path, name) and ENV_SECRET not in output(tmp_path, name)


def test_the_temporary_prefect_api_ends_with_a_killed_lab2_run(tmp_path):
    run = start_lab2(tmp_path, "api", [])
    try:
        wait_for(
            lambda: _api_servers(run.pid) or run.poll() is not None,
            120,
            "the temporary Prefect API",
        )
        servers = _api_servers(run.pid)
        assert servers, "lab2 run started no temporary Prefect API"
        assert listening_hosts(run.pid) <= {
            "127.0.0.1"
        }  # the temporary API answers this machine alone
        os.kill(
            run.pid, signal.SIGKILL
        )  # the process alone, not its group: nothing runs its exit hooks
        run.wait(timeout=30)
        _, alive = psutil.wait_procs(servers, timeout=30)
        assert not alive, f"the temporary Prefect API outlived its lab2 run: {alive}"
    finally:
        kill_group(run)


def _api_servers(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if "prefect.server.api.server:create_app" in " ".join(c.cmdline())]
