"""Every figure of a run drawn as PNG bytes, and the seed statistics they show, computed in a
process of their own when one is open (`figure_process`), else here.

Matplotlib holds Python's GIL while it draws, as MLflow does while it writes runs and torch's
exporter while it saves a model: in the flow's process, the U figure, a learning curve per cell
and the six summary figures would hold up the runs' logging, and importing matplotlib and scipy
would add half a second to it. `lab2 run` opens one spawned process as its flow starts; it
imports them while the parent run is created, then draws and computes on the other core while
this process trains, logs and saves the winner's model. Worker processes (a process-pool or Dask
grid) have none open and draw their own cells' curves, on their own cores.
"""

from __future__ import annotations

import atexit
import io
import multiprocessing
import os
import pickle
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypedDict

import pandas as pd

from lab2.core.seeds import SeedComparison, compare_seeds

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from lab2.core.mlp import CellResult


class FigureProcess:
    """A process that draws figures and computes the statistics they show; started as it is made, so
    that its imports overlap the flow's work."""

    def __init__(self) -> None:
        self.pid = os.getpid()  # the process that opened it
        self._pool = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_as_lab2s_helper
        )
        self._pool.submit(_ready)  # the process starts on its first job

    def submit(self, compute: Callable[..., object], *args: object) -> Future:
        # Pickled now, in the caller's thread: the pool pickles on a thread of its own, while the
        # flow may read (and cache into) the same objects.
        return self._pool.submit(_unpickled, compute, pickle.dumps(args))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


_open: FigureProcess | None = None


@contextmanager
def figure_process() -> Iterator[None]:
    """A figure process for the figures drawn inside (in any thread of this process): the one
    already open, else one started now and ended on exit."""
    global _open
    if _open_here():
        yield
        return
    _open = FigureProcess()
    try:
        yield
    finally:
        _open.close()
        _open = None


def u_scatter_png(
    u_svd: np.ndarray,
    u_gd: np.ndarray | None,
    labels: np.ndarray,
    class_names: Sequence[str],
    label_name: str,
) -> Future[bytes]:
    """Q1_3's U scatter (lab2.core.plots.plot_u_scatter) as PNG; no GD U when it diverged."""
    return _computed(_u_scatter_png, u_svd, u_gd, labels, list(class_names), label_name)


class _InTitle(TypedDict):
    """What a learning curve's title says of its cell."""

    lr: float
    iterations: int
    seed: int
    train_accuracy: float
    val_accuracy: float


def learning_curve_png(cell: CellResult) -> Future[bytes]:
    """One cell's learning curve (lab2.core.plots.plot_learning_curve) as PNG."""
    in_title = _InTitle(
        lr=cell.lr,
        iterations=cell.iterations,
        seed=cell.seed,
        train_accuracy=cell.train_accuracy,
        val_accuracy=cell.val_accuracy,
    )
    return _computed(_learning_curve_png, dict(cell.train_loss_history), in_title)


def grid_summary_pngs(
    cells: pd.DataFrame, curves: pd.DataFrame, seeds: SeedComparison
) -> Future[dict[str, bytes]]:
    """The grid's six summary figures (lab2.core.plots.grid_summary_figures) as PNG bytes by
    artifact name."""
    return _computed(_grid_summary_pngs, cells, curves, seeds.summary, seeds.paired, seeds.pairs)


def seed_comparison(
    cells: pd.DataFrame, val_rows: int | None, min_effect: float | None
) -> Future[SeedComparison]:
    """lab2.core.seeds.compare_seeds of the cells, which the summary figures then show."""
    return _computed(compare_seeds, cells, val_rows, min_effect)


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _open_here() -> FigureProcess | None:
    """The figure process this process opened (a forked worker inherits its parent's, which is not
    its own)."""
    return _open if _open is not None and _open.pid == os.getpid() else None


def _computed(compute: Callable[..., object], *args: object) -> Future:
    if process := _open_here():
        return process.submit(compute, *args)
    done: Future = Future()
    done.set_result(compute(*args))
    return done


# In the figure process (or here, with none open): matplotlib and scipy are imported on first use.


def _ready() -> None:
    import scipy.stats  # noqa: F401

    import lab2.core.plots  # noqa: F401


def _unpickled(compute: Callable[..., object], args: bytes) -> object:
    return compute(*pickle.loads(args))


def _u_scatter_png(
    u_svd: np.ndarray,
    u_gd: np.ndarray | None,
    labels: np.ndarray,
    class_names: list[str],
    label_name: str,
) -> bytes:
    from lab2.core.plots import plot_u_scatter

    return png(plot_u_scatter(u_svd, u_gd, labels, class_names, label_name))


def _learning_curve_png(history: Mapping[int, float], in_title: _InTitle) -> bytes:
    from lab2.core.plots import plot_learning_curve

    return png(plot_learning_curve(history, **in_title))


def _grid_summary_pngs(*frames: pd.DataFrame) -> dict[str, bytes]:
    from lab2.core.plots import grid_summary_figures

    return {name: png(figure) for name, figure in grid_summary_figures(*frames).items()}


def _as_lab2s_helper() -> None:
    """Ctrl-C reaches the whole process group: lab2 ends this process itself, with no traceback from
    it. Its end skips the interpreter's teardown of matplotlib, pandas and scipy, as lab2's own
    does: lab2's exit waits for this process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    atexit.register(_end_now)


def _end_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
