"""The stack: a Prefect server, a process worker on `lab2-process`, an MLflow server.

On 127.0.0.1 and SQLite by default; on PostgreSQL with `postgres` (databases lab2_mlflow and
lab2_prefect, created when missing); beyond 127.0.0.1 only with authentication on both servers
(MLflow's basic-auth app, Prefect's API auth string), credentials taken from the environment.

Every process starts in its own process group and is recorded (pid, port, log) in `stack.json` in
the data directory, beside where the stack listens; `down` ends whole groups, since `mlflow server`
leaves job consumers behind otherwise. A second `up` starts only what is not already running.
Passwords never reach stack.json, command lines or messages.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from lab2.core.params import InputError

HOST = "127.0.0.1"
POOL = "lab2-process"
STATE_FILE = "stack.json"
SERVICES = ("prefect-server", "mlflow-server", "prefect-worker")  # in start order
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
DATABASES = {"mlflow": "lab2_mlflow", "prefect": "lab2_prefect"}
# Beyond 127.0.0.1 both servers ask for these; clients (flows, the worker, Dask workers) send them.
CREDENTIAL_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING")


class StackError(RuntimeError):
    """The stack could not be brought up or reached (port taken, a server not healthy in time, ...)."""


def redact_password(url: str) -> str:
    """`url` with the password of its user replaced by *** (the user stays, to tell accounts apart)."""
    return re.sub(r"://([^:/@\s]*):[^@/\s]*@", r"://\1:***@", url)


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and listens: data directory (state, stores, logs), address, ports, database."""

    data_dir: Path
    prefect_port: int = 4200
    mlflow_port: int = 5000
    timeout: float = 120.0  # seconds to wait for each service's readiness
    host: str = HOST
    postgres: str | None = field(default=None, repr=False)  # postgresql://USER:PASSWORD@HOST:PORT, a server; never written down

    @classmethod
    def from_env(
        cls, data_dir: str | None = None, prefect_port: int | None = None, mlflow_port: int | None = None,
        host: str | None = None, postgres: str | None = None,
    ) -> StackConfig:
        """Options win over the data directory's stack.json (a stack already up), then LAB2_STACK_DIR,
        LAB2_PREFECT_PORT, LAB2_MLFLOW_PORT, LAB2_HOST, LAB2_POSTGRES_URL, then the defaults."""
        env = os.environ
        folder = Path(data_dir or env.get("LAB2_STACK_DIR") or ".lab2-stack").resolve()
        recorded = read_settings(folder)
        return cls(
            data_dir=folder,
            prefect_port=prefect_port or recorded.get("prefect_port") or int(env.get("LAB2_PREFECT_PORT", 4200)),
            mlflow_port=mlflow_port or recorded.get("mlflow_port") or int(env.get("LAB2_MLFLOW_PORT", 5000)),
            host=host or recorded.get("host") or env.get("LAB2_HOST") or HOST,
            postgres=postgres or env.get("LAB2_POSTGRES_URL") or None,
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
    def prefect_api_url(self) -> str:
        return f"http://{self.reachable_host}:{self.prefect_port}/api"

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.reachable_host}:{self.prefect_port}"

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
        return {"host": self.host, "prefect_port": self.prefect_port, "mlflow_port": self.mlflow_port, "backend": self.backend, "auth": self.auth}


def client_urls(config: StackConfig) -> dict[str, str]:
    """The URLs clients use: PREFECT_API_URL and MLFLOW_TRACKING_URI as exported, else the stack's."""
    return {name: os.environ.get(name) or url for name, url in config.client_env().items()}


def check_config(config: StackConfig) -> None:
    """Raise InputError for a PostgreSQL URL lab2 cannot use, or auth without its credentials."""
    if config.postgres:
        parts = urlsplit(config.postgres)
        shown = redact_password(config.postgres)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise InputError(f"--postgres {shown}: expected postgresql://USER:PASSWORD@HOST:PORT")
        if parts.path.strip("/"):
            raise InputError(f"--postgres {shown}: name the server only, no database; lab2 uses {' and '.join(DATABASES.values())}")
    missing = [name for name in CREDENTIAL_ENV if not os.environ.get(name)]
    if config.auth and missing:
        raise InputError(
            f"--host {config.host} listens beyond 127.0.0.1, so both servers ask for credentials: "
            f"export {', '.join(missing)} (PREFECT_API_AUTH_STRING as USER:PASSWORD)"
        )


def unanswered(urls: Mapping[str, str]) -> list[str]:
    """One line per client URL whose server does not answer its health check: the URL and what to do."""
    problems = []
    for name, url in urls.items():
        if not url.startswith(("http://", "https://")):
            continue  # a local MLflow store: nothing to ask
        health = url.rstrip("/") + "/health"
        if not _answers(health):
            problems.append(f"{name}={redact_password(url)}: no server answers at {redact_password(health)}; start the stack (lab2 stack up) or export the right {name}")
    return problems


@dataclass(frozen=True)
class _Service:
    name: str
    command: list[str]
    env: dict[str, str] = field(repr=False)  # may hold credentials
    port: int
    ready: Callable[[], bool]


def up(config: StackConfig) -> dict[str, dict]:
    """Start what is not running yet, wait until every service is ready; return the state."""
    check_config(config)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    state = {name: entry for name, entry in _read_state(config).items() if _group_alive(entry["pid"])}
    recorded = read_settings(config.data_dir).get("backend")
    if len(state) < len(SERVICES) and state and recorded != config.backend:
        raise InputError(
            f"the stack in {config.data_dir} runs on {recorded}, not {config.backend}; give the same --postgres "
            "(its password is not stored), or `lab2 stack down` first"
        )
    if config.postgres and len(state) < len(SERVICES):
        create_databases(config.postgres)
    services = _services(config)
    started: list[str] = []
    try:
        for batch in (("prefect-server", "mlflow-server"), ("prefect-worker",)):  # the worker needs the API
            for name in [n for n in batch if n not in state]:
                state[name] = _start(services[name], config)
                started.append(name)
                _write_state(config, state)
            for name in batch:
                _wait_ready(services[name], state[name]["pid"], config)
    except BaseException:
        for name in reversed(started):  # what this call started; what ran before keeps running
            _stop_group(state.pop(name)["pid"], grace=20.0)
        _write_state(config, state)
        raise
    return state


def down(config: StackConfig, grace: float = 20.0) -> list[str]:
    """End every recorded process group (TERM, then KILL after `grace` s) and wait; return what was stopped."""
    state = _read_state(config)
    stopped = []
    for name in reversed(SERVICES):
        if name not in state:
            continue
        pgid = state[name]["pid"]
        spawned = _descendant_groups(pgid)  # e.g. the worker's flow runs, each in a session of its own
        if _stop_group(pgid, grace):
            stopped.append(name)
        for group in spawned:
            _stop_group(group, grace)
    config.state_file.unlink(missing_ok=True)
    return stopped


def status(config: StackConfig) -> dict[str, dict]:
    """Each recorded service with `running` (its group alive) and `healthy` (it answers)."""
    services = _services(config)
    report = {}
    for name, entry in _read_state(config).items():
        alive = _group_alive(entry["pid"])
        report[name] = {**entry, "running": alive, "healthy": alive and services[name].ready()}
    return report


def deploy(config: StackConfig, project_dir: Path) -> subprocess.CompletedProcess:
    """`prefect deploy --all` from `project_dir`, unattended, with the client URLs for prefect.yaml's templates.

    Raises StackError, naming the URL, if a server does not answer.
    """
    urls = client_urls(config)
    if problems := unanswered(urls):
        raise StackError("\n".join(problems))
    env = {**os.environ, **QUIET, **urls, "PWD": str(project_dir.resolve()), "PREFECT_CLI_PROMPT": "false"}
    command = [_bin("prefect"), "--no-prompt", "deploy", "--all"]
    return subprocess.run(command, cwd=project_dir, env=env, capture_output=True, text=True, check=False)


def describe(config: StackConfig, state: Mapping[str, dict]) -> str:
    """Human summary: what runs where, the logs, and the environment for clients."""
    backend = read_settings(config.data_dir).get("backend", config.backend)  # as started, also when asked without --postgres
    lines = [f"lab2 stack in {config.data_dir} (store: {backend}; auth: {'on' if config.auth else 'off, 127.0.0.1 only'})"]
    for name in SERVICES:
        entry = state.get(name)
        if entry is None:
            lines.append(f"  {name:15} not running")
            continue
        health = "" if entry.get("healthy", True) else "  (not answering)"
        where = entry.get("url", f"pool {POOL}")
        lines.append(f"  {name:15} pid {entry['pid']:<7} {where}{health}  log {entry['log']}")
    lines.append(f"Prefect UI  {config.prefect_ui_url}")
    lines.append(f"MLflow UI   {config.mlflow_url}")
    lines.append("Point clients at it:")
    lines += [f"  export {k}={v}" for k, v in config.client_env().items()]
    if config.auth:
        lines.append(f"  with {', '.join(CREDENTIAL_ENV)} exported as when the stack started")
    return "\n".join(lines)


def create_databases(server: str) -> None:
    """Create lab2_mlflow and lab2_prefect on the PostgreSQL `server` where missing."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url(server, "postgres", "psycopg2"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for name in DATABASES.values():
                exists = connection.execute(sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first()
                if exists is None:
                    connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = redact_password(str(getattr(error, "orig", error))).strip().splitlines()[0]
        raise StackError(f"PostgreSQL at {redact_password(server)}: {reason}; check the URL, the server and the account") from None
    finally:
        engine.dispose()


def postgres_url(server: str, database: str, driver: str) -> str:
    """The URL of `database` on the PostgreSQL `server` (postgresql://USER:PASSWORD@HOST:PORT)."""
    parts = urlsplit(server)
    return urlunsplit((f"postgresql+{driver}", parts.netloc, f"/{database}", parts.query, ""))


def _services(config: StackConfig) -> dict[str, _Service]:
    prefect_env = {**QUIET, "PREFECT_HOME": str(config.data_dir / "prefect")}
    # The UI calls the API at PREFECT_UI_API_URL (else :4200); secrets go by environment, never on a command line.
    server_env = {**prefect_env, "PREFECT_API_URL": config.prefect_api_url, "PREFECT_UI_API_URL": config.prefect_api_url}
    mlflow_env = {
        **QUIET,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # GenAI job consumers: lab2 has no jobs
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{config.data_dir / 'mlflow.db'}",
    }
    mlflow_auth: list[str] = []
    if config.postgres:
        server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = postgres_url(config.postgres, DATABASES["prefect"], "asyncpg")
        mlflow_env["MLFLOW_BACKEND_STORE_URI"] = postgres_url(config.postgres, DATABASES["mlflow"], "psycopg2")
    if config.auth:
        server_env["PREFECT_SERVER_API_AUTH_STRING"] = os.environ["PREFECT_API_AUTH_STRING"]
        mlflow_env |= {
            "MLFLOW_AUTH_ADMIN_USERNAME": os.environ["MLFLOW_TRACKING_USERNAME"],
            "MLFLOW_AUTH_ADMIN_PASSWORD": os.environ["MLFLOW_TRACKING_PASSWORD"],  # sets the admin once, in basic_auth.db
            "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or secrets.token_hex(32),
        }
        mlflow_auth = ["--app-name", "basic-auth"]
        if not os.environ.get("MLFLOW_SERVER_ALLOWED_HOSTS"):  # MLflow answers only Host headers it knows (else 403)
            names = [config.reachable_host, "localhost", HOST]
            mlflow_auth += ["--allowed-hosts", ",".join(f"{n},{n}:{config.mlflow_port}" for n in names)]
    artifacts = config.data_dir / "mlartifacts"
    services = [
        _Service(
            "prefect-server",
            [_bin("prefect"), "server", "start", "--host", config.host, "--port", str(config.prefect_port)],
            server_env,
            config.prefect_port,
            lambda: _answers(f"{config.prefect_api_url}/health"),
        ),
        _Service(
            "mlflow-server",
            [
                _bin("mlflow"), "server", "--host", config.host, "--port", str(config.mlflow_port), "--workers", "1",
                "--serve-artifacts", "--artifacts-destination", artifacts.as_uri(), *mlflow_auth,
            ],
            mlflow_env,
            config.mlflow_port,
            lambda: _answers(f"{config.mlflow_url}/health"),
        ),
        _Service(
            "prefect-worker",
            [_bin("prefect"), "worker", "start", "--pool", POOL, "--type", "process", "--name", f"lab2-worker-{config.prefect_port}"],
            {**prefect_env, "PREFECT_API_URL": config.prefect_api_url},
            0,
            lambda: _worker_online(config),
        ),
    ]
    return {s.name: s for s in services}


def _start(service: _Service, config: StackConfig) -> dict:
    if service.port and not _port_free(config.host, service.port):
        raise StackError(f"{service.name}: port {config.host}:{service.port} is taken by another process; choose another port")
    log = config.log_dir / f"{service.name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            service.command, env={**os.environ, **service.env}, cwd=config.data_dir,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    entry = {"pid": process.pid, "log": str(log), "command": service.command}
    if service.port:
        entry |= {"port": service.port, "url": f"http://{config.reachable_host}:{service.port}"}
    return entry


def _wait_ready(service: _Service, pid: int, config: StackConfig) -> None:
    deadline = time.monotonic() + config.timeout
    while time.monotonic() < deadline:
        if service.ready():
            return
        if not _group_alive(pid):
            raise StackError(f"{service.name} exited during start-up; see {config.log_dir / service.name}.log")
        time.sleep(0.5)
    raise StackError(f"{service.name} not ready after {config.timeout:.0f} s; see {config.log_dir / service.name}.log")


def _answers(url: str) -> bool:
    """True if `url` (a health check, open without credentials on both servers) answers 200."""
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def prefect_auth_headers() -> dict[str, str]:
    """The Authorization header Prefect's clients send when PREFECT_API_AUTH_STRING is set."""
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}


def _worker_online(config: StackConfig) -> bool:
    url = f"{config.prefect_api_url}/work_pools/{POOL}/workers/filter"
    try:
        response = requests.post(url, json={}, headers=prefect_auth_headers(), timeout=5)
        return response.status_code == 200 and any(w.get("status") == "ONLINE" for w in response.json())
    except requests.RequestException:
        return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: a closed port in TIME_WAIT is free
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _group_alive(pgid: int) -> bool:
    _reap(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap(pid: int) -> None:
    """Collect `pid`'s exit status if it is our child, so a finished leader does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _stop_group(pgid: int, grace: float) -> bool:
    if not _group_alive(pgid):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _group_alive(pgid):
                return True
            time.sleep(0.2)
    raise StackError(f"process group {pgid} survived SIGKILL")


def _descendant_groups(pid: int) -> set[int]:
    """Process groups of every descendant of `pid` other than its own."""
    table = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,pgid="], capture_output=True, text=True, check=False).stdout
    rows = [tuple(map(int, line.split())) for line in table.splitlines() if line.strip()]
    family, groups = {pid}, set()
    for _ in range(len(rows)):  # grow the family until no process joins
        joined = {(p, g) for p, parent, g in rows if parent in family and p not in family}
        if not joined:
            break
        family |= {p for p, _ in joined}
        groups |= {g for _, g in joined}
    return groups - {pid}


def _read_file(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return {}


def read_settings(data_dir: Path) -> dict:
    """Where the stack recorded in `data_dir` listens and keeps its records ({} if none is recorded)."""
    return _read_file(data_dir).get("stack", {})


def _read_state(config: StackConfig) -> dict[str, dict]:
    return _read_file(config.data_dir).get("services", {})


def _write_state(config: StackConfig, state: Mapping[str, dict]) -> None:
    config.state_file.write_text(json.dumps({"stack": config.settings(), "services": state}, indent=2))


def _bin(name: str) -> str:
    """A console script of this environment (beside its Python), so the stack runs the pinned versions."""
    return str(Path(sys.executable).with_name(name))
