"""The stack's services and their process groups: what each runs (secrets by environment), starting
it in a group of its own, knowing it is ready, ending the group and those its processes started."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import requests

from lab2.cli.stack_config import (
    DATABASES,
    HOST,
    POOL,
    StackConfig,
    StackError,
    postgres_url,
    redact_password,
)

SERVICES = ("prefect-server", "mlflow-server", "prefect-worker")  # in start order
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}
NO_JOBS = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"
}  # an MLflow server without its GenAI job runner: 7 processes fewer


@dataclass(frozen=True)
class Service:
    """One process of the stack: its command, its environment beyond this one's, its port (0: none),
    its readiness."""

    name: str
    command: list[str]
    env: dict[str, str] = field(repr=False)  # may hold credentials
    port: int
    ready: Callable[[], bool]


def services(config: StackConfig) -> dict[str, Service]:
    """The stack's services by name, in start order."""
    prefect_env = {
        **QUIET,
        "PREFECT_HOME": str(config.data_dir / "prefect"),
        "PREFECT_API_URL": config.prefect_api_url,
    }
    worker = [
        console_script("prefect"),
        "worker",
        "start",
        "--pool",
        POOL,
        "--type",
        "process",
        "--name",
        f"lab2-worker-{config.prefect_port}",
    ]
    return {
        "prefect-server": _prefect_server(config, prefect_env),
        "mlflow-server": _mlflow_server(config),
        "prefect-worker": Service(
            "prefect-worker", worker, prefect_env, 0, lambda: _worker_online(config)
        ),
    }


def _prefect_server(config: StackConfig, prefect_env: Mapping[str, str]) -> Service:
    # The UI calls the API at PREFECT_UI_API_URL (else :4200).
    env = {**prefect_env, "PREFECT_UI_API_URL": config.prefect_api_url}
    if config.postgres:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = postgres_url(
            config.postgres, DATABASES["prefect"], "asyncpg"
        )
    if config.auth:
        env["PREFECT_SERVER_API_AUTH_STRING"] = os.environ.get("PREFECT_API_AUTH_STRING", "")
    command = [
        console_script("prefect"),
        "server",
        "start",
        "--host",
        config.host,
        "--port",
        str(config.prefect_port),
    ]
    return Service(
        "prefect-server",
        command,
        env,
        config.prefect_port,
        lambda: answers(f"{config.prefect_api_url}/health"),
    )


def _mlflow_server(config: StackConfig) -> Service:
    store = (
        postgres_url(config.postgres, DATABASES["mlflow"], "psycopg2")
        if config.postgres
        else f"sqlite:///{config.data_dir / 'mlflow.db'}"
    )
    env = {**QUIET, **NO_JOBS, "MLFLOW_BACKEND_STORE_URI": store}
    command = [
        console_script("mlflow"),
        "server",
        "--host",
        config.host,
        "--port",
        str(config.mlflow_port),
        "--workers",
        "1",
        "--serve-artifacts",
        "--artifacts-destination",
        (config.data_dir / "mlartifacts").as_uri(),
    ]
    if config.auth:
        env |= {
            "MLFLOW_AUTH_ADMIN_USERNAME": os.environ.get("MLFLOW_TRACKING_USERNAME", ""),
            "MLFLOW_AUTH_ADMIN_PASSWORD": os.environ.get(
                "MLFLOW_TRACKING_PASSWORD", ""
            ),  # sets the admin once, in basic_auth.db
            "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY")
            or secrets.token_hex(32),
        }
        command += ["--app-name", "basic-auth"]
        if not os.environ.get(
            "MLFLOW_SERVER_ALLOWED_HOSTS"
        ):  # MLflow answers only Host headers it knows (else 403)
            names = [config.reachable_host, "localhost", HOST]
            command += ["--allowed-hosts", ",".join(f"{n},{n}:{config.mlflow_port}" for n in names)]
    return Service(
        "mlflow-server",
        command,
        env,
        config.mlflow_port,
        lambda: answers(f"{config.mlflow_url}/health"),
    )


def create_databases(server: str) -> None:
    """Create lab2_mlflow and lab2_prefect on the PostgreSQL `server` where missing."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        postgres_url(server, "postgres", "psycopg2"), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as connection:
            existing = set(
                connection.execute(sqlalchemy.text("SELECT datname FROM pg_database")).scalars()
            )
            for name in [n for n in DATABASES.values() if n not in existing]:
                connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = redact_password(str(getattr(error, "orig", error))).strip().splitlines()[0]
        raise StackError(
            f"PostgreSQL at {redact_password(server)}: {reason}; check the URL, the server "
            "and the account"
        ) from None
    finally:
        engine.dispose()


def start(service: Service, config: StackConfig) -> dict:
    """Start `service` in a process group of its own, output appended to its log; return its
    stack.json entry."""
    if service.port and not _port_free(config.host, service.port):
        raise StackError(
            f"{service.name}: port {config.host}:{service.port} is taken by another process; "
            "choose another port"
        )
    log = config.log_dir / f"{service.name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            service.command,
            env={**os.environ, **service.env},
            cwd=config.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = (
        {"port": service.port, "url": f"http://{config.reachable_host}:{service.port}"}
        if service.port
        else {}
    )
    return {"pid": process.pid, "log": str(log), "command": service.command, **served}


def wait_ready(service: Service, pid: int, config: StackConfig) -> None:
    """Return once `service` is ready; raise StackError if its group ends first or the timeout
    passes."""
    deadline = time.monotonic() + config.timeout
    while time.monotonic() < deadline:
        if service.ready():
            return
        if not group_alive(pid):
            log = config.log_dir / f"{service.name}.log"
            raise StackError(
                f"{service.name} exited during start-up: {last_log_line(log)}; see {log}"
            )
        time.sleep(0.5)
    raise StackError(
        f"{service.name} not ready after {config.timeout:.0f} s; see "
        f"{config.log_dir / service.name}.log"
    )


def last_log_line(log: Path) -> str:
    """The last line of a log that says something: after a traceback, the error itself."""
    said = (
        [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
        if log.is_file()
        else []
    )
    return said[-1] if said else "its log is empty"


def answers(url: str) -> bool:
    """True if `url` (a health check, open without credentials on both servers) answers 200."""
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def unanswered(urls: Mapping[str, str]) -> list[str]:
    """One line per client URL whose server does not answer its health check: the URL and what to
    do."""
    health = {
        name: url.rstrip("/") + "/health"
        for name, url in urls.items()
        if url.startswith(("http://", "https://"))
    }  # not a local MLflow store
    return [
        (
            f"{name}={redact_password(urls[name])}: no server answers at "
            f"{redact_password(check)}; start the stack (lab2 stack up) or export the right "
            f"{name}"
        )
        for name, check in health.items()
        if not answers(check)
    ]


def prefect_auth_headers() -> dict[str, str]:
    """The Authorization header Prefect's clients send when PREFECT_API_AUTH_STRING is set."""
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}


def _worker_online(config: StackConfig) -> bool:
    url = f"{config.prefect_api_url}/work_pools/{POOL}/workers/filter"
    try:
        response = requests.post(url, json={}, headers=prefect_auth_headers(), timeout=5)
        return response.status_code == 200 and any(
            w.get("status") == "ONLINE" for w in response.json()
        )
    except requests.RequestException:
        return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # as the servers do: a closed port in TIME_WAIT is free
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def group_alive(pgid: int) -> bool:
    """True while process group `pgid` has a member (reaping its leader first if it is our finished
    child)."""
    with suppress(ChildProcessError):  # a finished leader of ours must not linger as a zombie
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return True


def stop_group(pgid: int, grace: float) -> bool:
    """End process group `pgid` (TERM, then KILL after `grace` s) and wait; False if it had already
    ended."""
    if not group_alive(pgid):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return True
            time.sleep(0.2)
    raise StackError(f"process group {pgid} survived SIGKILL")


def descendant_groups(pid: int) -> set[int]:
    """Process groups of every descendant of `pid` other than its own."""
    table = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid=,pgid="], capture_output=True, text=True, check=False
    ).stdout
    rows = [tuple(map(int, line.split())) for line in table.splitlines() if line.strip()]
    family, groups = {pid}, set()
    while joined := {
        (p, g) for p, parent, g in rows if parent in family and p not in family
    }:  # until no process joins
        family |= {p for p, _ in joined}
        groups |= {g for _, g in joined}
    return groups - {pid}


def console_script(name: str) -> str:
    """A console script of this environment (beside its Python), so the stack runs the pinned
    versions."""
    return str(Path(sys.executable).with_name(name))
