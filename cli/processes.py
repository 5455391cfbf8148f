"""Servers lab2 starts (the stack's, `mlflow ui`, the temporary Prefect API): each in a process
group of its own, found alive, ended whole; the loopback ports they take and the logs they keep."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

import requests


class GroupSurvived(RuntimeError):
    """A process group still had a member after SIGKILL."""


def console_script(name: str) -> str:
    """A console script of this environment (beside its Python), so servers run the pinned
    versions."""
    return str(Path(sys.executable).with_name(name))


def start_group(
    command: list[str], env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen:
    """`command` in a session (so a process group) of its own, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


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
    raise GroupSurvived(f"process group {pgid} survived SIGKILL")


def descendant_groups(pid: int) -> set[int]:
    """Process groups of every descendant of `pid` other than its own."""
    table = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid=,pgid="], capture_output=True, text=True, check=False
    ).stdout
    rows = [tuple(map(int, line.split())) for line in table.splitlines() if line.strip()]
    family, groups = {pid}, set()
    while joined := {(p, g) for p, parent, g in rows if parent in family and p not in family}:
        family |= {p for p, _ in joined}  # until no process joins
        groups |= {g for _, g in joined}
    return groups - {pid}


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the system's pick)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on `host`:`port` now."""
    with socket.socket() as s:
        # As the servers do: a closed port in TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def answers(url: str) -> bool:
    """True if `url` (a health check, open without credentials) answers 200."""
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def last_log_line(log: Path) -> str:
    """The last line of a log that says something: after a traceback, the error itself."""
    said = (
        [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
        if log.is_file()
        else []
    )
    return said[-1] if said else "its log is empty"
