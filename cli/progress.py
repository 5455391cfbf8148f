"""The grid's progress as `lab2 run` shows it: one live line in a terminal, a plain line every 15 s
otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from lab2.cli.render import duration

if TYPE_CHECKING:
    from rich.progress import TaskID

PLAIN_EVERY_SECONDS = 15.0  # between two plain progress lines, when the output is a file or a pipe


@contextmanager
def progress_line(stream: TextIO = sys.stderr) -> Iterator[None]:
    """Show the cells trained and logged (from the `lab2.progress` log records) while the block
    runs."""
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


@dataclass(frozen=True)
class _Counts:
    """What a `lab2.progress` record carries (its `extra`): cells trained, logged, in all."""

    trained: int
    logged: int
    cells: int

    @classmethod
    def of(cls, record: logging.LogRecord) -> _Counts:
        given = record.__dict__
        return cls(given["trained"], given["logged"], given["cells"])

    @property
    def done(self) -> int:
        return self.trained + self.logged


class _LiveLine(logging.Handler):
    """rich's progress bar: cells trained and logged, elapsed, time left."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        super().__init__()
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
        )
        self.progress = Progress(*columns, console=Console(file=stream), transient=True)
        self.task: TaskID | None = None

    def emit(self, record: logging.LogRecord) -> None:
        counts = _Counts.of(record)
        cells = counts.cells
        text = f"cells trained {counts.trained}/{cells}, logged {counts.logged}/{cells}"
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task(text, total=2 * cells, completed=counts.done)
        self.progress.update(self.task, description=text, completed=counts.done)

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()
        super().close()


class _PlainLines(logging.Handler):
    """A line every PLAIN_EVERY_SECONDS while the grid runs (from a timer thread), and one when
    every cell is logged."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.latest: _Counts | None = None
        self.start = 0.0
        self.first_done = 0  # what was done (reused) before this run trained anything
        self.finished = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        counts = _Counts.of(record)
        if self.latest is None:  # the grid starts: time counts from here
            self.start, self.first_done = time.monotonic(), counts.done
            threading.Thread(target=self._every_period, name="lab2-progress", daemon=True).start()
        self.latest = counts
        if counts.logged == counts.cells and not self.finished.is_set():
            self.finished.set()
            self._line(counts)

    def close(self) -> None:
        self.finished.set()
        super().close()

    def _every_period(self) -> None:
        while not self.finished.wait(PLAIN_EVERY_SECONDS):
            if self.latest is not None:
                self._line(self.latest)

    def _line(self, counts: _Counts) -> None:
        elapsed, done, todo = time.monotonic() - self.start, counts.done, 2 * counts.cells
        line = (
            f"lab2: cells trained {counts.trained}/{counts.cells}, logged "
            f"{counts.logged}/{counts.cells}, {duration(elapsed)}"
        )
        if done < todo and done > self.first_done:
            line += f", about {duration(elapsed * (todo - done) / (done - self.first_done))} left"
        print(line, file=self.stream, flush=True)
