"""How `lab2 run` stops: Ctrl-C or SIGTERM ends it within seconds, keeps every finished run, and
says how to go on.

The first signal unwinds the flow (its grid stops through the stop file; the parent run ends
KILLED) and arms a watchdog that ends the process STOP_GRACE_SECONDS later whatever is still
running; a second one ends it at once. Runs left RUNNING by a process ended that way are marked
KILLED by the next run that closes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType

import psutil

STOP_GRACE_SECONDS = 10.0
# 128 + the signal, as shells report it
EXIT_STATUS: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}
_received: list[int] = []  # the stop signals this module's handler has seen
_arrived: list[int] = []  # the first stop signal as it reached the process, whichever handler ran


@contextmanager
def stop_signals_handled() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM stop this process as described above; the handlers
    before it after it."""
    _received.clear()
    _arrived.clear()
    previous = {signum: signal.signal(signum, _on_signal) for signum in EXIT_STATUS}
    # Every signal also reaches a pipe, read by a thread: the watchdog holds whichever Python
    # handler runs (Prefect installs its own for SIGTERM while a flow runs, and hands the signal on
    # only as the flow ends).
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read_end,), name="lab2-stop-watch", daemon=True).start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        os.close(write_end)  # the watching thread sees the end of the pipe and ends
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_signal() -> int | None:
    """The signal that stopped this run (None if none did)."""
    seen = _received or _arrived
    return seen[0] if seen else None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # A second signal here ends at once. While a flow runs, Prefect's handler takes SIGTERM and
    # sends it again once its flows have ended: this handler then sees it for the first time.
    if _received:
        _end_now(f"lab2 run: {signal.Signals(signum).name} again: ended at once\n")
    _received.append(signum)
    raise KeyboardInterrupt


def _watch(read_end: int) -> None:
    """The first stop signal to reach the process arms a watchdog that ends it STOP_GRACE_SECONDS
    later."""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while byte := pipe.read(1):
            if byte[0] in EXIT_STATUS and not _arrived:
                _arrived.append(byte[0])
                message = f"lab2 run: did not stop within {STOP_GRACE_SECONDS:g} s: ended\n"
                watchdog = threading.Timer(STOP_GRACE_SECONDS, _end_now, [message])
                watchdog.daemon = True
                watchdog.start()


def _end_now(message: str) -> None:
    os.write(2, message.encode())
    os._exit(EXIT_STATUS[stop_signal() or signal.SIGINT])


def end_children(spare: set[int]) -> None:
    """End every process this one started (a task runner's workers, a local Dask cluster), except
    those in `spare`: SIGTERM, then SIGKILL after 3 s."""
    # multiprocessing's resource tracker ignores SIGTERM and ends by itself with this process,
    # cleaning up after the rest.
    children = [
        c
        for c in psutil.Process().children(recursive=True)
        if c.pid not in spare and not _resource_tracker(c)
    ]
    for child in children:
        with suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=3)
    for child in alive:
        with suppress(psutil.Error):
            child.kill()


def _resource_tracker(process: psutil.Process) -> bool:
    try:
        return "resource_tracker" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def stopped_message(experiment: str) -> str:
    """The one line `lab2 run` ends with when stopped: how many finished runs its parent keeps, and
    how to go on."""
    name = signal.Signals(stop_signal() or signal.SIGINT).name
    kept = _finished_children(experiment)
    if kept is None:
        return (
            f"lab2 run: stopped ({name}) before any run finished; run the same command again to "
            "start."
        )
    runs = "run" if kept == 1 else "runs"
    return (
        f"lab2 run: stopped ({name}): {kept} finished {runs} kept, parent KILLED; rerun the same "
        "command to go on."
    )


def _finished_children(experiment: str) -> int | None:
    """FINISHED child runs of this process's parent run (None if it opened none or MLflow does not
    say); asked with a short retry window."""
    if (
        "lab2.tasks.tracking.runs" not in sys.modules
    ):  # stopped while importing: no run can exist yet
        return None
    try:
        from lab2.core.settings import env_name
        from lab2.tasks.layout import OWNER_TAG, PARENT_TAG, PIPELINE_ROLE, ROLE_TAG
        from lab2.tasks.tracking import find_experiment, owner, search_runs

        os.environ[env_name("tracking_retry_seconds")] = (
            "2"  # the store may be the reason for the stop: no minute-long retries now
        )
        exp_id = find_experiment(experiment)
        mine = f"tags.`{OWNER_TAG}` = '{owner()}' and tags.`{ROLE_TAG}` = '{PIPELINE_ROLE}'"
        parents = search_runs(exp_id, mine) if exp_id else []
        if not parents or exp_id is None:
            return None
        query = (
            f"tags.`{PARENT_TAG}` = '{parents[0].info.run_id}' and attributes.status = 'FINISHED'"
        )
        return len(search_runs(exp_id, query))
    except Exception:  # noqa: BLE001 - the count is a courtesy; the stop itself has happened
        return None
