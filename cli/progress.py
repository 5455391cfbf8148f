"""The grid's progress as `lab2 run` shows it: one live line in a terminal, a plain line now and then otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from lab2.cli.render import duration

PLAIN_EVERY_SECONDS = 15.0  # between two plain progress lines, when the output is a file or a pipe


@contextmanager
def progress_line(stream: TextIO = sys.stderr) -> Iterator[None]:
    """Show the cells trained and logged (from the `lab2.progress` log records) while the block runs."""
    handler = _LiveLine(stream) if stream.isatty() else _PlainLines(stream)
    logger = logging.getLogger("lab2.progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the counts are for this line only, not for Prefect's console
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


class _LiveLine(logging.Handler):
    """rich's progress bar: cells trained and logged, elapsed, time left."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        super().__init__()
        columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
        self.progress = Progress(*columns, console=Console(file=stream), transient=True)
        self.task = None

    def emit(self, record: logging.LogRecord) -> None:
        done, cells = record.trained + record.logged, record.cells
        text = f"cells trained {record.trained}/{cells}, logged {record.logged}/{cells}"
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task(text, total=2 * cells, completed=done)
        self.progress.update(self.task, description=text, completed=done)

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()
        super().close()


class _PlainLines(logging.Handler):
    """A line every PLAIN_EVERY_SECONDS, and one when every cell is logged."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.start = self.last = time.monotonic()
        self.first_done: int | None = None  # what was done (reused) before this run trained anything
        self.finished = False

    def emit(self, record: logging.LogRecord) -> None:
        done, todo, now = record.trained + record.logged, 2 * record.cells, time.monotonic()
        if self.first_done is None:  # the grid starts: time counts from here
            self.first_done, self.start, self.last = done, now, now
        finished = record.logged == record.cells
        if (finished and self.finished) or (not finished and now - self.last < PLAIN_EVERY_SECONDS):
            return
        self.last, self.finished = now, finished
        line = f"lab2: cells trained {record.trained}/{record.cells}, logged {record.logged}/{record.cells}, {duration(now - self.start)}"
        if not finished and done > self.first_done:
            left = (now - self.start) * (todo - done) / (done - self.first_done)
            line += f", about {duration(left)} left"
        print(line, file=self.stream, flush=True)
