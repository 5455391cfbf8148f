"""A team's lab2 on real servers: the stack on PostgreSQL, an external Dask cluster, several users
at once.

One PostgreSQL cluster of the test's own (Debian's server, initdb into a temporary folder,
127.0.0.1 on a free port) holds both servers' databases; every check reads MLflow's REST API, and
the PostgreSQL test also the database itself. Everything started here is stopped when the module
ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import requests

from lab2.cli import processes, stack, stack_services
from lab2.cli.main import main
from lab2.cli.processes import free_port
from tests.helpers.dask_cluster import dask_cluster
from tests.helpers.lab2_runs import reference_cells
from tests.helpers.postgres import postgres_cluster
from tests.helpers.processes import end_group, start_in_group
from tests.helpers.stack_servers import (
    PROJECT,
    lab2_command,
    metrics_of,
    mlflow_json,
    mlflow_runs,
    params_of,
    prefect_json,
    run_deployment,
    run_env,
    running_stack,
    tags_of,
)

# One worker runs the whole module (pytest -n N --dist loadgroup): its tests share module-scoped
# servers.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("team")]

GRID = {
    "lrs": [0.1, 0.01],
    "iterations": [5],
    "seeds": [0, 1],
    "experiment": "on-postgres",
    "cell_figures": True,
}
SMALL = ["--gd-epochs", "5", "--iterations", "5", "20", "--seeds", "0", "1", "--no-cell-figures"]
# Six users at once: four different grids, two the same; Q1's four units are the same for all six.
USERS = [
    ["--lrs", "0.1"],
    ["--lrs", "0.05"],
    ["--lrs", "0.02"],
    ["--lrs", "0.01"],
    ["--lrs", "0.3"],
    ["--lrs", "0.3"],
]
CELLS_PER_USER = 4  # 1 lr x 2 iteration counts x 2 seeds
Q1_UNITS = 4  # gd-factorise and svd-baseline of the lab's matrix and of Iris


def _connect(postgres, database: str):
    """A connection to one of the cluster's databases (psycopg2 comes with the postgres extra)."""
    psycopg2 = pytest.importorskip("psycopg2", reason="the postgres extra is not installed")
    return psycopg2.connect(
        host="127.0.0.1",
        port=postgres.port,
        user="lab2",
        password=postgres.password,
        dbname=database,
    )


@pytest.fixture(scope="module")
def postgres():
    for driver in (
        "psycopg2",
        "asyncpg",
    ):  # the MLflow and the Prefect server's drivers: the postgres extra
        pytest.importorskip(driver, reason="the postgres extra is not installed")
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def config(postgres, tmp_path_factory) -> stack_services.StackConfig:
    """The stack on the module's PostgreSQL server, on free ports of 127.0.0.1."""
    config = stack_services.StackConfig(
        tmp_path_factory.mktemp("stack"),
        free_port(),
        free_port(),
        timeout=180.0,
        postgres=postgres.url,
    )
    with running_stack(config):
        yield config


def _run_deployment(config: stack_services.StackConfig, name: str, parameters: dict) -> dict:
    (deployment,) = [
        d
        for d in prefect_json(config.prefect_api_url, "deployments/filter", {})
        if d["name"] == name
    ]
    return run_deployment(config.prefect_api_url, deployment["id"], {"params": parameters})


def _database_runs(postgres, experiment: str) -> dict[str, tuple[str, str | None]]:
    """run id → (status, lab2.step) of every run of `experiment`, read from MLflow's tables in
    lab2_mlflow."""
    query = """
        SELECT r.run_uuid, r.status, t.value FROM runs r
        JOIN experiments e ON e.experiment_id = r.experiment_id
        LEFT JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'lab2.step'
        WHERE e.name = %s AND r.lifecycle_stage = 'active'
    """
    with _connect(postgres, "lab2_mlflow") as db, db.cursor() as cursor:
        cursor.execute(query, (experiment,))
        return {run_id: (status, step) for run_id, status, step in cursor.fetchall()}


@pytest.fixture(scope="module")
def deployed(config) -> stack_services.StackConfig:
    """prefect.yaml deployed against the stack (the stack's URLs, whatever this shell exports)."""
    env = pytest.MonkeyPatch()
    for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        env.delenv(name, raising=False)
    try:
        done = stack.deploy(config, PROJECT)
    finally:
        env.undo()
    assert done.returncode == 0, done.stdout + done.stderr
    return config


def test_the_deployment_runs_on_postgresql_and_every_run_reads_back(deployed, postgres, capsys):
    config = deployed
    started = time.monotonic()
    flow_run = _run_deployment(config, "mlp-grid", GRID)
    print(f"\nmlp-grid deployment on PostgreSQL: {time.monotonic() - started:.1f} s")
    assert flow_run["state_type"] == "COMPLETED", flow_run["state"]

    runs = mlflow_runs(config.mlflow_url, GRID["experiment"])
    cells = [r for r in runs if tags_of(r).get("lab2.step") == "mlp"]
    assert sorted((float(params_of(r)["lr"]), int(params_of(r)["seed"])) for r in cells) == [
        (0.01, 0),
        (0.01, 1),
        (0.1, 0),
        (0.1, 1),
    ]
    # and the parent
    assert all(r["info"]["status"] == "FINISHED" for r in runs) and len(runs) == len(cells) + 1
    assert all(0 <= metrics_of(r)["val_accuracy"] <= 1 for r in cells)
    # The same runs, statuses and steps in the database itself.
    assert _database_runs(postgres, GRID["experiment"]) == {
        r["info"]["run_id"]: (r["info"]["status"], tags_of(r).get("lab2.step")) for r in runs
    }
    # Artifacts are served by the MLflow server, from the stack's folder.
    listed = mlflow_json(config.mlflow_url, "artifacts/list", run_id=cells[0]["info"]["run_id"])
    # at the root, where MLflow's compare looks
    assert [f["path"] for f in listed["files"]] == ["learning_curve.png"]
    assert cells[0]["info"]["artifact_uri"].startswith("mlflow-artifacts:")
    assert list((config.data_dir / "mlartifacts").rglob("learning_curve.png"))
    # Prefect's flow runs live in lab2_prefect.
    with _connect(postgres, "lab2_prefect") as db, db.cursor() as cursor:
        cursor.execute("SELECT state_type FROM flow_run WHERE id = %s", (flow_run["id"],))
        assert cursor.fetchone() == ("COMPLETED",)

    # The password is nowhere: stack.json, status, logs, command lines.
    assert main(["stack", "status", "--data-dir", str(config.data_dir)]) == 0
    shown = capsys.readouterr().out
    assert f"postgresql://lab2:***@127.0.0.1:{postgres.port}" in shown
    written = [
        p.read_text(errors="replace") for p in [config.state_file, *config.log_dir.iterdir()]
    ]
    commands = subprocess.run(
        ["ps", "-e", "-o", "args="], capture_output=True, text=True, check=True
    ).stdout
    assert all(postgres.password not in text for text in [shown, commands, *written])
    assert '"backend": "postgresql://lab2:***@' in config.state_file.read_text()


def _start_users(env: dict[str, str], experiment: str, folder: Path) -> list[subprocess.Popen]:
    folder.mkdir(exist_ok=True)
    return [
        start_in_group(
            lab2_command(*grid, *SMALL, "--experiment", experiment), env, folder / f"user-{i}.log"
        )
        for i, grid in enumerate(USERS)
    ]


def _wait_all(processes: list[subprocess.Popen], folder: Path, timeout: float = 600.0) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(max(1.0, deadline - time.monotonic())) for p in processes]
    finally:
        for p in processes:
            end_group(p, grace=5.0)


def _check_users(mlflow_url: str, experiment: str) -> int:
    """Every unit finished exactly once, nothing left RUNNING, every parent complete; returns the
    runs checked."""
    runs = mlflow_runs(mlflow_url, experiment)
    by_status = Counter(r["info"]["status"] for r in runs)
    assert by_status["RUNNING"] == 0, by_status
    identities = Counter(
        tags_of(r)["lab2.identity"]
        for r in runs
        if r["info"]["status"] == "FINISHED" and "lab2.identity" in tags_of(r)
    )
    distinct_grids = len({tuple(g) for g in USERS})
    assert len(identities) == Q1_UNITS + distinct_grids * CELLS_PER_USER and set(
        identities.values()
    ) == {1}, identities
    parents = [r for r in runs if tags_of(r).get("lab2.role") == "pipeline"]
    assert len(parents) == len(USERS) and all(p["info"]["status"] == "FINISHED" for p in parents)
    for parent in parents:
        units = {
            k.removeprefix("lab2."): int(v) for k, v in tags_of(parent).items() if ".units_" in k
        }
        assert units["mlp_grid.units_reused"] + units["mlp_grid.units_computed"] == CELLS_PER_USER
        assert (
            units["factorisation.units_reused"] + units["factorisation.units_computed"] == Q1_UNITS
        )
    cells = {
        (params_of(r)["lr"], params_of(r)["iterations"], params_of(r)["seed"])
        for r in runs
        if tags_of(r).get("lab2.identity") and tags_of(r).get("lab2.step") == "mlp"
    }
    assert len(cells) == distinct_grids * CELLS_PER_USER
    return len(runs)


def _users_at_once(client_env: dict[str, str], experiment: str, folder: Path, label: str) -> None:
    env = run_env(client_env, LAB2_TRACKING_RETRY_SECONDS="120")
    started = time.monotonic()
    codes = _wait_all(_start_users(env, experiment, folder), folder)
    together = time.monotonic() - started
    logs = {p.name: p.read_text()[-2000:] for p in folder.glob("*.log")}
    assert codes == [0] * len(USERS), logs
    checked = _check_users(client_env["MLFLOW_TRACKING_URI"], experiment)
    print(
        f"\n{label}: {len(USERS)} lab2 run processes at once: {together:.1f} s wall; "
        f"{checked} runs checked"
    )
    if os.environ.get(
        "LAB2_MEASURE_SERIES"
    ):  # the same runs one after another, for the wall-time comparison
        started = time.monotonic()
        for grid in USERS:
            done = subprocess.run(
                lab2_command(*grid, *SMALL, "--experiment", f"{experiment}-series"),
                env=env,
                cwd=folder,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, done.stderr[-2000:]
        print(f"{label}: the same {len(USERS)} in series: {time.monotonic() - started:.1f} s wall")


def test_six_users_at_once_on_postgresql(config, tmp_path):
    _users_at_once(config.client_env(), "together", tmp_path / "users", "MLflow on PostgreSQL")


def test_six_users_at_once_on_sqlite_through_one_mlflow_server(config, tmp_path):
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        (tmp_path / "artifacts").as_uri(),
    ]
    env = {**os.environ, **stack_services.QUIET, **stack_services.NO_JOBS}
    server = start_in_group(command, env, tmp_path / "mlflow-server.log")
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while not processes.answers(f"{url}/health") and time.monotonic() < deadline:
            time.sleep(0.5)
        client_env = {**config.client_env(), "MLFLOW_TRACKING_URI": url}
        _users_at_once(
            client_env, "together", tmp_path / "users", "MLflow on SQLite through one server"
        )
    finally:
        end_group(server)


DASK_AXES = {"lrs": (0.3, 0.1, 0.03), "iterations": (5, 50), "seeds": (0, 1)}
DASK_GRID = [
    *(w for k, v in DASK_AXES.items() for w in (f"--{k}", *map(str, v))),
    "--gd-epochs",
    "5",
    "--no-cell-figures",
]
KILL_GRID = [
    "--lrs",
    *[str(lr) for lr in (0.5, 0.3, 0.2, 0.1, 0.05, 0.03)],
    "--iterations",
    "10",
    "1500",
    "--seeds",
    "0",
    "1",
    "2",
    "3",
    "--gd-epochs",
    "5",
]
METRICS = ("train_accuracy", "val_accuracy", "train_loss", "val_loss")


@pytest.fixture(scope="module")
def dask(config, tmp_path_factory):
    """`dask scheduler` and two `dask worker`s, each worker told only where Prefect and MLflow
    are."""
    pytest.importorskip("prefect_dask", reason="the dask extra is not installed")
    with dask_cluster(config.client_env(), tmp_path_factory.mktemp("dask")) as cluster:
        yield cluster


def seed_cells(mlflow_url: str, experiment: str) -> dict[tuple[float, int, int], dict[str, float]]:
    """(lr, iterations, seed) → metrics of every FINISHED mlp run that carries an identity."""
    return {
        (float(params_of(r)["lr"]), int(params_of(r)["iterations"]), int(params_of(r)["seed"])): {
            m: metrics_of(r)[m] for m in METRICS
        }
        for r in mlflow_runs(mlflow_url, experiment)
        if tags_of(r).get("lab2.step") == "mlp"
        and r["info"]["status"] == "FINISHED"
        and "lab2.identity" in tags_of(r)
    }


def test_a_grid_on_an_external_dask_cluster_gives_the_engines_metrics_exactly(
    config, dask, tmp_path
):
    options = [
        "--task-runner",
        "dask",
        "--dask-address",
        dask.address,
        "--experiment",
        "runner-dask",
    ]
    started = time.monotonic()
    done = subprocess.run(
        lab2_command(*DASK_GRID, *options),
        env=run_env(config.client_env()),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    # Exactly, float for float, what the batched engine gives here without any runner or tracking.
    assert seed_cells(config.mlflow_url, "runner-dask") == reference_cells(**DASK_AXES)
    # The cells were logged on the workers: each cell run's owner (host/pid/start) is a worker
    # process.
    worker_pids = {
        c.pid
        for w in dask.workers.values()
        for c in [psutil.Process(w.pid), *psutil.Process(w.pid).children(recursive=True)]
    }
    owners = {
        int(tags_of(r)["lab2.owner"].split("/")[1])
        for r in mlflow_runs(config.mlflow_url, "runner-dask")
        if tags_of(r).get("lab2.step") == "mlp"
    }
    assert owners and owners <= worker_pids
    print(f"\nexternal Dask: 12 cells in {took:.1f} s (lab2 run wall)")


def test_the_mlp_grid_deployment_takes_the_dask_cluster_as_a_parameter(deployed, dask):
    parameters = {
        **GRID,
        "experiment": "deployed-dask",
        "cell_figures": False,
        "task_runner": "dask",
        "dask_address": dask.address,
    }
    flow_run = _run_deployment(deployed, "mlp-grid", parameters)
    assert flow_run["state_type"] == "COMPLETED", flow_run["state"]
    runs = [
        r
        for r in mlflow_runs(deployed.mlflow_url, "deployed-dask")
        if tags_of(r).get("lab2.step") == "mlp"
    ]
    worker_pids = {
        c.pid
        for w in dask.workers.values()
        for c in [psutil.Process(w.pid), *psutil.Process(w.pid).children(recursive=True)]
    }
    assert (
        len(runs) == 4
        and {int(tags_of(r)["lab2.owner"].split("/")[1]) for r in runs} <= worker_pids
    )


def _mlp_runs_exist(mlflow_url: str, experiment: str) -> bool:
    try:
        return any(
            tags_of(r).get("lab2.step") == "mlp" for r in mlflow_runs(mlflow_url, experiment)
        )
    except requests.HTTPError:  # the experiment does not exist yet
        return False


def test_a_worker_killed_mid_grid_still_leaves_every_cell_finished_once(config, dask, tmp_path):
    from distributed import Client

    experiment = "dask-killed"
    env = run_env(config.client_env())
    command = lab2_command(
        *KILL_GRID,
        "--task-runner",
        "dask",
        "--dask-address",
        dask.address,
        "--experiment",
        experiment,
    )
    started = time.monotonic()
    user = start_in_group(command, env, tmp_path / "lab2.log")
    killed = None
    try:
        with Client(dask.address, timeout=30) as client:
            deadline = time.monotonic() + 300
            while killed is None and time.monotonic() < deadline and user.poll() is None:
                logging_now = {
                    w
                    for w, keys in client.processing().items()
                    if any("log_cells" in str(k) for k in keys)
                }
                if logging_now and _mlp_runs_exist(
                    config.mlflow_url, experiment
                ):  # a worker is writing cell runs
                    killed = next(iter(logging_now))
                    end_group(dask.workers.pop(killed), grace=0.0)  # SIGKILL, mid-task
                time.sleep(0.05)
        code = user.wait(600)
    finally:
        end_group(user)
    log = (tmp_path / "lab2.log").read_text()
    assert killed is not None, log[-3000:]
    assert code == 0, log[-3000:]
    cells = seed_cells(config.mlflow_url, experiment)
    identities = Counter(
        tags_of(r)["lab2.identity"]
        for r in mlflow_runs(config.mlflow_url, experiment)
        if r["info"]["status"] == "FINISHED" and "lab2.identity" in tags_of(r)
    )
    assert len(cells) == 6 * 2 * 4 and set(identities.values()) == {1}
    runs = mlflow_runs(config.mlflow_url, experiment)
    leftovers = Counter(r["info"]["status"] for r in runs)
    # A cell run the killed worker had open is marked KILLED when the pipeline closes; nothing is
    # left RUNNING.
    killed_runs = [r for r in runs if r["info"]["status"] == "KILLED"]
    assert leftovers["RUNNING"] == 0 and all(
        "lab2.stale" in tags_of(r) and tags_of(r)["lab2.step"] == "mlp" for r in killed_runs
    )
    print(
        f"\nworker {killed} killed mid-grid: 48 cells finished once in "
        f"{time.monotonic() - started:.1f} s; runs by status {dict(leftovers)}"
    )
