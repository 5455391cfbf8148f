"""The grid's summary figures, drawn in a process of their own while this one logs the winner's model.

Matplotlib holds Python's GIL while it draws, as MLflow and torch's exporter do while they save a model: in one
process the six summary figures (2–3 s) wait for the model and then hold up the run. A spawned process imports
matplotlib as the grid trains, draws the figures on the other core, and hands back their PNG bytes.
"""

from __future__ import annotations

import io
import multiprocessing
import pickle
import signal
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pandas as pd

from lab2.core.plots import grid_summary_figures
from lab2.core.seeds import SeedComparison

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class FigureProcess:
    """A process that draws the grid's summary figures; started as it is made, so that its imports overlap the grid."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_leave_stops_to_lab2)
        self._pool.submit(_ready)  # the process starts on its first job, and imports this module for it

    def draw_grid_summary(self, cells: pd.DataFrame, curves: pd.DataFrame, seeds: SeedComparison) -> Future[dict[str, bytes]]:
        """The summary figures as PNG bytes by name, drawn in the process."""
        # Pickled now: the pool pickles on a thread of its own, while the flow reads (and caches into) the same objects.
        frames = pickle.dumps((cells, curves, seeds.summary, seeds.paired, seeds.pairs))
        return self._pool.submit(_grid_summary_pngs, frames)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@contextmanager
def figure_process() -> Iterator[FigureProcess]:
    process = FigureProcess()
    try:
        yield process
    finally:
        process.close()


def _ready() -> None:
    """Nothing: unpickled in the process, it has the process import matplotlib and the seed statistics."""


def _grid_summary_pngs(frames: bytes) -> dict[str, bytes]:
    return {name: _png(figure) for name, figure in grid_summary_figures(*pickle.loads(frames)).items()}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _leave_stops_to_lab2() -> None:
    """Ctrl-C reaches the whole process group: lab2 ends this process itself, with no traceback from it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
