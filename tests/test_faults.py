"""Faults on the real `lab2` command: SIGKILL halfway, two writers on one SQLite store, an MLflow
server that goes away and comes back, credentials in the tracking URI; each store checked for
loss and duplicates."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
from pathlib import Path

import psutil
import pytest
import requests
from mlflow.tracking import MlflowClient

from tests.helpers.http import request
from tests.helpers.lab2_runs import (
    BIN,
    ENV_SECRET,
    SECRET,
    check_store,
    count_runs,
    kill_group,
    lab2_env,
    listening_hosts,
    output,
    start_lab2,
    wait_for,
)
from tests.helpers.mlflow_runs import all_runs

pytestmark = pytest.mark.system


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
        if r.data.tags.get("lab2.diverged") == "false" and r.data.tags.get("lab2.step") == "mlp"
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
        # the process alone, not its group: nothing runs its exit hooks
        os.kill(run.pid, signal.SIGKILL)
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
