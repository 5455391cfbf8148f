"""Real servers for the system tier: a PostgreSQL cluster, a Dask cluster, the stack; each on free
loopback ports.

Every process starts in a process group of its own, and each context manager ends what it
started.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from lab2.cli import stack, stack_config, stack_services
from tests.helpers.checkout import ROOT
from tests.helpers.processes import descendants, left_behind, still_alive

PROJECT = ROOT  # prefect.yaml and automations.yaml live at the checkout's top
BIN = Path(sys.executable).parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server programs (initdb, pg_ctl), newest version first."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]),
        reverse=True,
    )
    return Path(found[0]).parent if found else None


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL cluster: its server URL (superuser lab2 with a password) and data
    folder."""

    url: str
    password: str
    port: int
    folder: Path


@contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """A PostgreSQL cluster of its own (initdb in a temporary folder, password auth, 127.0.0.1 on a
    free port), stopped and removed on exit. As root, the server runs as the `postgres` account,
    since it refuses root."""
    programs = postgres_bin()
    if programs is None:
        raise RuntimeError(
            "PostgreSQL's server is not installed (initdb under /usr/lib/postgresql/*/bin); "
            "`make test` installs it"
        )
    folder = Path(tempfile.mkdtemp(prefix="lab2-pg-"))
    data, password, port = folder / "data", secrets.token_urlsafe(16), free_port()
    (folder / "pw").write_text(password + "\n")
    as_user: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        shutil.chown(folder, account.pw_uid, account.pw_gid)
        shutil.chown(folder / "pw", account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

    def run(*command: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*as_user, *map(str, command)], env=env, check=True, capture_output=True, text=True
        )

    run(
        programs / "initdb",
        "-D",
        data,
        "-U",
        "lab2",
        "--auth=scram-sha-256",
        f"--pwfile={folder / 'pw'}",
        "-E",
        "UTF8",
    )
    (folder / "pw").unlink()
    options = f"-p {port} -h 127.0.0.1 -k {folder} -c max_connections=200"
    run(
        programs / "pg_ctl",
        "-D",
        data,
        "-l",
        folder / "server.log",
        "-o",
        options,
        "-w",
        "-t",
        "60",
        "start",
    )
    try:
        yield Postgres(f"postgresql://lab2:{password}@127.0.0.1:{port}", password, port, folder)
    finally:
        run(programs / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def running_stack(config: stack.StackConfig) -> Iterator[stack.StackConfig]:
    """The stack up for the block; afterwards down, with no process group or descendant left."""
    before = descendants()
    try:
        stack.up(config)
        yield config
    finally:
        started = stack_config.read_services(config.data_dir)
        family = descendants() - before  # servers, worker, their children, flow runs still running
        stack.down(config)
        assert [
            name for name, entry in started.items() if stack_services.group_alive(entry["pid"])
        ] == []
        assert left_behind(before) == {} and still_alive(family) == set()


def start_group(command: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen:
    """`command` in a process group of its own, in `log`'s folder (what it writes there stays out of
    the sources), output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            env=dict(env),
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_group(process: subprocess.Popen, grace: float = 15.0) -> None:
    """End `process`'s whole group: TERM, then KILL after `grace` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # the leader is gone; its children may linger a moment
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@dataclass
class DaskCluster:
    """A `dask scheduler` and its `dask worker`s, each a process group of its own; workers by their
    address."""

    address: str
    scheduler: subprocess.Popen
    workers: dict[str, subprocess.Popen]


@contextmanager
def dask_cluster(
    client_env: Mapping[str, str], folder: Path, n_workers: int = 2
) -> Iterator[DaskCluster]:
    """A Dask scheduler and `n_workers` single-threaded workers on 127.0.0.1; each worker's
    environment holds only `client_env` (PREFECT_API_URL, MLFLOW_TRACKING_URI) beside PATH and
    HOME."""
    port = free_port()
    base = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(folder)),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    dask = str(BIN / "dask")
    scheduler = start_group(
        [
            dask,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            "127.0.0.1:0",
        ],
        base,
        folder / "scheduler.log",
    )
    address, workers = f"tcp://127.0.0.1:{port}", {}
    try:
        _wait_port(port)
        for index in range(n_workers):
            worker_port = free_port()
            command = [
                dask,
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--worker-port",
                str(worker_port),
                "--nthreads",
                "1",
                "--dashboard-address",
                "127.0.0.1:0",
                "--name",
                f"w{index}",
                "--local-directory",
                str(folder / f"w{index}"),
            ]
            workers[f"tcp://127.0.0.1:{worker_port}"] = start_group(
                command, {**base, **client_env}, folder / f"worker-{index}.log"
            )
        _wait_workers(address, n_workers)
        yield DaskCluster(address, scheduler, workers)
    finally:
        for process in [*workers.values(), scheduler]:
            stop_group(process)


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def _wait_workers(address: str, n_workers: int, timeout: float = 120.0) -> None:
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(n_workers, timeout=timeout)


def lab2_command(*options: str) -> list[str]:
    return [str(BIN / "lab2"), "run", *options]


def run_env(client_env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """This process's environment pointed at a stack (the stack's URLs win)."""
    return {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MPLBACKEND": "Agg",
        **client_env,
        **extra,
    }


# A server that is busy (Prefect on SQLite answers 503 when its database is locked) or restarting is
# asked again.
BUSY_STATUSES = frozenset({429}) | frozenset(range(500, 600))
RETRY_SECONDS = 120.0


def request(
    method: str, url: str, *, retry_for: float = RETRY_SECONDS, idempotent: bool = True, **options
) -> requests.Response:
    """One HTTP call to a server the tests started, asked again while the server is busy.

    A connection error, 429 or 5xx is retried with backoff (0.5 s doubling to 8 s, or the
    server's Retry-After) for up to `retry_for` s; a read timeout only when the call is
    `idempotent` (a create that timed out may have happened). Any other answer (2xx, 3xx, 4xx) is
    returned as it is; when time runs out, the last busy answer is returned, or the last error
    raised.
    """
    options.setdefault("timeout", 30)
    deadline, delay = time.monotonic() + retry_for, 0.5
    retried = (
        (requests.ConnectionError, requests.Timeout) if idempotent else (requests.ConnectionError,)
    )
    while True:
        try:
            response = requests.request(method, url, **options)
        except retried:
            if time.monotonic() + delay > deadline:
                raise
            wait = delay
        else:
            if response.status_code not in BUSY_STATUSES or time.monotonic() + delay > deadline:
                return response
            wait = _retry_after(response, delay)
        time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        delay = min(2 * delay, 8.0)


def _retry_after(response: requests.Response, default: float) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", default)), 0.1), 8.0)
    except ValueError:  # an HTTP date: keep to the backoff
        return default


def http_json(method: str, url: str, body: dict | None = None, **options) -> dict | list:
    """The JSON answer of one call (`request`, retried while the server is busy); an error status
    fails with HTTPError."""
    response = request(method, url, **({"json": body} if body is not None else {}), **options)
    response.raise_for_status()
    return response.json()


def prefect_json(api_url: str, endpoint: str, body: dict | None = None, **options) -> dict | list:
    """One call of Prefect's REST API: POST with a body, else GET."""
    return http_json(
        "POST" if body is not None else "GET", f"{api_url}/{endpoint}", body, **options
    )


TERMINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


def run_deployment(
    api_url: str,
    deployment_id: str,
    parameters: dict,
    timeout: float = 300.0,
    job_variables: dict | None = None,
    **options,
) -> dict:
    """A flow run of the deployment (with its own `job_variables`, e.g. an environment), created and
    followed until it ends (or `timeout` s pass); the run's last state."""
    create = f"deployments/{deployment_id}/create_flow_run"
    body = {"parameters": parameters, **({"job_variables": job_variables} if job_variables else {})}
    run = http_json("POST", f"{api_url}/{create}", body, idempotent=False, **options)
    deadline = time.monotonic() + timeout
    while run["state_type"] not in TERMINAL and time.monotonic() < deadline:
        time.sleep(1)
        run = prefect_json(api_url, f"flow_runs/{run['id']}", **options)
    return run


def mlflow_json(
    base: str,
    endpoint: str,
    body: dict | None = None,
    auth: tuple[str, str] | None = None,
    **query: str,
) -> dict:
    """One call of MLflow's REST API (POST with a body, else GET with `query`), retried while the
    server is busy."""
    url = f"{base}/api/2.0/mlflow/{endpoint}"
    if body is not None:
        return http_json("POST", url, body, auth=auth)
    return http_json("GET", url, params=query, auth=auth)


def mlflow_runs(base: str, experiment: str, auth: tuple[str, str] | None = None) -> list[dict]:
    """Every run of `experiment` over MLflow's REST API (all pages)."""
    found = mlflow_json(base, "experiments/get-by-name", auth=auth, experiment_name=experiment)[
        "experiment"
    ]
    runs, token = [], None
    while True:
        body = {
            "experiment_ids": [found["experiment_id"]],
            "max_results": 1000,
            **({"page_token": token} if token else {}),
        }
        page = mlflow_json(base, "runs/search", body, auth=auth)
        runs += page.get("runs", [])
        token = page.get("next_page_token")
        if not token:
            return runs


def tags_of(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def params_of(run: dict) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run["data"].get("params", [])}


def metrics_of(run: dict) -> dict[str, float]:
    return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
