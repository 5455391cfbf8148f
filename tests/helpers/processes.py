"""Processes of the tests: which ones a test left behind (descendants of the test process that
were not there before), and servers started and ended as lab2 starts and ends its own."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import psutil

from lab2.cli import processes

# Python's multiprocessing starts one resource tracker per process, which ends with that process.
_PROCESS_WIDE = ("multiprocessing.resource_tracker",)


def descendants() -> set[int]:
    """Pids of the living (non-zombie) descendants of this process."""
    alive = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def left_behind(before: set[int], timeout: float = 30.0) -> dict[int, str]:
    """Descendants started since `before` that are still alive after up to `timeout` s, with their
    command lines."""
    deadline = time.monotonic() + timeout
    while (extra := descendants() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    found = {pid: _command(pid) for pid in extra}
    return {
        pid: command
        for pid, command in found.items()
        if not any(name in command for name in _PROCESS_WIDE)
    }


def _command(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.NoSuchProcess:
        return "(gone)"


def still_alive(pids: set[int]) -> set[int]:
    """Those of `pids` that still run (zombies count as gone)."""
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def start_in_group(command: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen:
    """`command` in a process group of its own (the project's start_group), working in `log`'s
    folder so that what it writes stays out of the sources."""
    return processes.start_group(command, env, log, cwd=log.parent)


def end_group(process: subprocess.Popen, grace: float = 15.0) -> None:
    """End `process`'s whole group as lab2 ends its servers: TERM, then KILL after `grace` s."""
    processes.stop_group(process.pid, grace)
