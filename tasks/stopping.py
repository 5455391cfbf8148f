"""Stopping a grid in seconds: a stop file that its shards and loggers poll, made when the flow is
interrupted.

Ctrl-C, SIGTERM and a Prefect cancel reach the flow's own thread; the grid's shards and loggers
run on a task runner's threads, processes or Dask workers, which a signal does not reach. Each
polls the stop file (on the machine's temporary folder) between chunks of steps and between
cells, and raises Stopped.
"""

from __future__ import annotations

import atexit
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect.task_runners import TaskRunner

from lab2.core.mlp import Stopped


def stop_asked(stop_file: str) -> bool:
    """True once the flow that owns `stop_file` has been interrupted."""
    return Path(stop_file).exists()


def check_stop(stop_file: str) -> None:
    """Raise Stopped once the flow that owns `stop_file` has been interrupted."""
    if stop_asked(stop_file):
        raise Stopped("the run was stopped")


@contextmanager
def stoppable(runner: TaskRunner) -> Iterator[tuple[TaskRunner, str]]:
    """`runner` entered, with a fresh stop file: made if the block ends by any exception, so that
    its work stops before the runner waits for it."""
    stop_file = Path(tempfile.gettempdir()) / f"lab2-stop-{uuid.uuid4().hex}"
    with runner:
        try:
            yield runner, str(stop_file)
        except BaseException:
            stop_file.touch()
            # Kept while this process lives: a runner may end before its processes or Dask workers
            # have seen it.
            atexit.register(stop_file.unlink, missing_ok=True)
            raise
