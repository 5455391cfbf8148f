"""The local stack on 127.0.0.1: a Prefect server, a process worker on `lab2-process`, an MLflow server.

Every process starts in its own process group and is recorded (pid, port, log) in a state file in
the data directory; `down` ends whole groups, since `mlflow server` leaves job consumers behind
otherwise. A second `up` starts only what is not already running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
POOL = "lab2-process"
STATE_FILE = "stack.json"
SERVICES = ("prefect-server", "mlflow-server", "prefect-worker")  # in start order
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


class StackError(RuntimeError):
    """The stack could not be brought up (port taken, a server not healthy in time, ...)."""


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and listens: data directory (state, stores, logs) and loopback ports."""

    data_dir: Path
    prefect_port: int = 4200
    mlflow_port: int = 5000
    timeout: float = 120.0  # seconds to wait for each service's readiness

    @classmethod
    def from_env(cls, data_dir: str | None = None, prefect_port: int | None = None, mlflow_port: int | None = None) -> StackConfig:
        """Options win over LAB2_STACK_DIR, LAB2_PREFECT_PORT, LAB2_MLFLOW_PORT, which win over the defaults."""
        env = os.environ
        return cls(
            data_dir=Path(data_dir or env.get("LAB2_STACK_DIR") or ".lab2-stack").resolve(),
            prefect_port=prefect_port or int(env.get("LAB2_PREFECT_PORT", 4200)),
            mlflow_port=mlflow_port or int(env.get("LAB2_MLFLOW_PORT", 5000)),
        )

    @property
    def prefect_api_url(self) -> str:
        return f"http://{HOST}:{self.prefect_port}/api"

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{HOST}:{self.prefect_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    def client_env(self) -> dict[str, str]:
        """What a shell (or `prefect deploy`) needs to talk to this stack."""
        return {"PREFECT_API_URL": self.prefect_api_url, "MLFLOW_TRACKING_URI": self.mlflow_url}


@dataclass(frozen=True)
class _Service:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    ready: Callable[[], bool]


def up(config: StackConfig) -> dict[str, dict]:
    """Start what is not running yet, wait until every service is ready; return the state."""
    config.log_dir.mkdir(parents=True, exist_ok=True)
    state = {name: entry for name, entry in _read_state(config).items() if _group_alive(entry["pid"])}
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
    """`prefect deploy --all` from `project_dir`, unattended, with the stack's URLs for prefect.yaml's templates."""
    env = {**os.environ, **QUIET, **config.client_env(), "PWD": str(project_dir.resolve()), "PREFECT_CLI_PROMPT": "false"}
    command = [_bin("prefect"), "--no-prompt", "deploy", "--all"]
    return subprocess.run(command, cwd=project_dir, env=env, capture_output=True, text=True, check=False)


def describe(config: StackConfig, state: Mapping[str, dict]) -> str:
    """Human summary: what runs where, the logs, and the environment for clients."""
    lines = [f"lab2 stack in {config.data_dir}"]
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
    return "\n".join(lines)


def _services(config: StackConfig) -> dict[str, _Service]:
    prefect_env = {**QUIET, "PREFECT_HOME": str(config.data_dir / "prefect")}
    artifacts = config.data_dir / "mlartifacts"
    services = [
        _Service(
            "prefect-server",
            [_bin("prefect"), "server", "start", "--host", HOST, "--port", str(config.prefect_port)],
            prefect_env,
            config.prefect_port,
            lambda: _answers(f"{config.prefect_api_url}/health"),
        ),
        _Service(
            "mlflow-server",
            [
                _bin("mlflow"), "server", "--host", HOST, "--port", str(config.mlflow_port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{config.data_dir / 'mlflow.db'}",
                "--serve-artifacts", "--artifacts-destination", artifacts.as_uri(),
            ],
            {**QUIET, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # GenAI job consumers: lab2 has no jobs
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
    if service.port and not _port_free(service.port):
        raise StackError(f"{service.name}: port {HOST}:{service.port} is taken by another process; choose another port")
    log = config.log_dir / f"{service.name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            service.command, env={**os.environ, **service.env}, cwd=config.data_dir,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    entry = {"pid": process.pid, "log": str(log), "command": service.command}
    if service.port:
        entry |= {"port": service.port, "url": f"http://{HOST}:{service.port}"}
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
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _worker_online(config: StackConfig) -> bool:
    request = urllib.request.Request(
        f"{config.prefect_api_url}/work_pools/{POOL}/workers/filter", data=b"{}", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return any(w.get("status") == "ONLINE" for w in json.load(response))
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: a closed port in TIME_WAIT is free
        try:
            s.bind((HOST, port))
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


def _read_state(config: StackConfig) -> dict[str, dict]:
    try:
        return json.loads(config.state_file.read_text())
    except FileNotFoundError:
        return {}


def _write_state(config: StackConfig, state: Mapping[str, dict]) -> None:
    config.state_file.write_text(json.dumps(state, indent=2))


def _bin(name: str) -> str:
    """A console script of this environment (beside its Python), so the stack runs the pinned versions."""
    return str(Path(sys.executable).with_name(name))
