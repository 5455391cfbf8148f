"""Which processes a test left behind: descendants of the test process that were not there
before."""

from __future__ import annotations

import time

import psutil

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
