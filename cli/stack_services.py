"""The stack's configuration and services: where it lives and listens, its URLs, what it refuses,
its records in stack.json (where it listens: "stack"; each service's pid, log and port:
"services"), and what each service runs (secrets by environment), started in a process group of
its own and known ready."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from lab2.cli.processes import (
    answers,
    console_script,
    group_alive,
    last_log_line,
    port_free,
    start_group,
)
from lab2.core.errors import InputError
from lab2.core.settings import settings

HOST = "127.0.0.1"
POOL = "lab2-process"
STATE_FILE = "stack.json"
DATABASES = {"mlflow": "lab2_mlflow", "prefect": "lab2_prefect"}
# Beyond 127.0.0.1 both servers ask for these; clients (flows, the worker, Dask workers) send them.
CREDENTIAL_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING")


class StackError(RuntimeError):
    """The stack could not be brought up or reached (port taken, a server not healthy in time,
    ...)."""


def redact_password(url: str) -> str:
    """`url` with the password of its user replaced by *** (the user stays, to tell accounts
    apart)."""
    return re.sub(r"://([^:/@\s]*):[^@/\s]*@", r"://\1:***@", url)


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and listens: data directory (state, stores, logs), address, ports,
    database."""

    data_dir: Path
    prefect_port: int = 4200
    mlflow_port: int = 5000
    timeout: float = 120.0  # seconds to wait for each service's readiness
    host: str = HOST
    # postgresql://USER:PASSWORD@HOST:PORT, a server; never written down
    postgres: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(
        cls,
        data_dir: str | None = None,
        prefect_port: int | None = None,
        mlflow_port: int | None = None,
        host: str | None = None,
        postgres: str | None = None,
    ) -> StackConfig:
        """Options win over the data directory's stack.json (a stack already up), then
        LAB2_STACK_DIR, LAB2_PREFECT_PORT, LAB2_MLFLOW_PORT, LAB2_HOST, LAB2_POSTGRES_URL, then
        the defaults."""
        env = settings()
        folder = Path(data_dir or env.stack_dir).resolve()
        recorded = read_settings(folder)
        return cls(
            data_dir=folder,
            prefect_port=prefect_port or recorded.get("prefect_port") or env.prefect_port,
            mlflow_port=mlflow_port or recorded.get("mlflow_port") or env.mlflow_port,
            host=host or recorded.get("host") or env.host,
            postgres=postgres or env.postgres_url,
        )

    @property
    def auth(self) -> bool:
        """Authentication is on whenever the stack listens beyond 127.0.0.1."""
        return self.host != HOST

    @property
    def reachable_host(self) -> str:
        """The address clients use: this host's name when the stack listens on every interface."""
        return socket.getfqdn() if self.host in ("0.0.0.0", "::") else self.host

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.reachable_host}:{self.prefect_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"{self.prefect_ui_url}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.reachable_host}:{self.mlflow_port}"

    @property
    def backend(self) -> str:
        """Where both servers keep their records, password redacted."""
        return redact_password(self.postgres) if self.postgres else "sqlite"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    def client_env(self) -> dict[str, str]:
        """What a shell (or `prefect deploy`) needs to talk to this stack."""
        return {"PREFECT_API_URL": self.prefect_api_url, "MLFLOW_TRACKING_URI": self.mlflow_url}

    def settings(self) -> dict[str, object]:
        """What stack.json records of the configuration: nothing secret."""
        return {
            "host": self.host,
            "prefect_port": self.prefect_port,
            "mlflow_port": self.mlflow_port,
            "backend": self.backend,
            "auth": self.auth,
        }


def client_urls(config: StackConfig) -> dict[str, str]:
    """The URLs clients use: PREFECT_API_URL and MLFLOW_TRACKING_URI as exported, else the
    stack's."""
    return {name: os.environ.get(name) or url for name, url in config.client_env().items()}


def check_config(config: StackConfig) -> None:
    """Raise InputError for a PostgreSQL URL lab2 cannot use, or auth without its credentials."""
    if config.postgres:
        parts = urlsplit(config.postgres)
        shown = redact_password(config.postgres)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise InputError(f"--postgres {shown}: expected postgresql://USER:PASSWORD@HOST:PORT")
        if parts.path.strip("/"):
            raise InputError(
                f"--postgres {shown}: name the server only, no database; lab2 uses "
                f"{' and '.join(DATABASES.values())}"
            )
    missing = [name for name in CREDENTIAL_ENV if not os.environ.get(name)]
    if config.auth and missing:
        raise InputError(
            f"--host {config.host} listens beyond 127.0.0.1, so both servers ask for credentials: "
            f"export {', '.join(missing)} (PREFECT_API_AUTH_STRING as USER:PASSWORD)"
        )
    if config.auth:
        _check_credentials(
            os.environ["MLFLOW_TRACKING_PASSWORD"], os.environ["PREFECT_API_AUTH_STRING"]
        )


def _check_credentials(mlflow_password: str, prefect_auth: str) -> None:
    """Refuse credentials a server would refuse at start-up, by its own rule (MLflow's for its admin
    password)."""
    from mlflow.exceptions import MlflowException

    # MLflow's basic-auth server checks its admin password with this rule at start-up and offers
    # no public check; test_stack_config pins the rule (11 characters refused, 12 accepted).
    from mlflow.utils.validation import _validate_password

    try:
        _validate_password(mlflow_password)
    except MlflowException as error:
        raise InputError(
            f"MLFLOW_TRACKING_PASSWORD ({len(mlflow_password)} characters) is refused by "
            f"MLflow: {error.message}"
        ) from None
    user, colon, password = prefect_auth.partition(":")
    if not (user and colon and password):
        raise InputError("PREFECT_API_AUTH_STRING must be USER:PASSWORD, both parts non-empty")


def postgres_url(server: str, database: str, driver: str) -> str:
    """The URL of `database` on the PostgreSQL `server` (postgresql://USER:PASSWORD@HOST:PORT)."""
    parts = urlsplit(server)
    return urlunsplit((f"postgresql+{driver}", parts.netloc, f"/{database}", parts.query, ""))


def _read_state_file(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return {}


def read_settings(data_dir: Path) -> dict:
    """Where the stack recorded in `data_dir` listens and keeps its records ({} if none is
    recorded)."""
    return _read_state_file(data_dir).get("stack", {})


def read_services(data_dir: Path) -> dict[str, dict]:
    """The services recorded in `data_dir`, by name ({} if none is recorded)."""
    return _read_state_file(data_dir).get("services", {})


def write_state(
    data_dir: Path, settings: Mapping[str, object], services: Mapping[str, dict]
) -> None:
    """Record the stack's settings (nothing secret) and its services in `data_dir`."""
    (data_dir / STATE_FILE).write_text(
        json.dumps({"stack": settings, "services": services}, indent=2)
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
            # sets the admin once, in basic_auth.db
            "MLFLOW_AUTH_ADMIN_PASSWORD": os.environ.get("MLFLOW_TRACKING_PASSWORD", ""),
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
    if service.port and not port_free(config.host, service.port):
        raise StackError(
            f"{service.name}: port {config.host}:{service.port} is taken by another process; "
            "choose another port"
        )
    log = config.log_dir / f"{service.name}.log"
    process = start_group(service.command, {**os.environ, **service.env}, log, config.data_dir)
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
