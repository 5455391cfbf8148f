"""Time the MLP grid three ways on the same cells, in one process, and print ratios against the
first.

(a) the seed-style loop: a fresh model per cell, one step at a time, untracked (the lab's own
    loop);
(b) lab2's batched engine: each (lr, seed) trajectory once, all of them as one batched program,
    untracked;
(c) the full tracked pipeline: the `mlp_grid` Prefect flow, every cell an MLflow run with params,
    metrics and its training-loss curve (per-cell figures off for the sweep:
    `cell_figures=False`).

Grids: the lab's (3 lrs × 2 iteration counts × 3 seeds = 18 cells) and a sweep of 1,000 cells (10
lrs × iterations 100, 200, …, 1000 × 10 seeds). Times are medians of --repeats runs; memory is
the peak resident-set growth during a run. Torch runs one intra-op thread in every mode: these
tensors are tiny, and extra threads only contend with each other on a shared 2-core machine.

python benchmarks/grid_benchmark.py [--repeats 3] [--grids lab sweep]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import torch

from lab2.core.data import load_dataset
from lab2.core.mlp import prepare_mlp_data, train_cell_loop, train_cells
from lab2.core.params import LAB_ITERATIONS, LAB_LRS, LAB_SEEDS

GRIDS = {
    "lab": (LAB_LRS, LAB_ITERATIONS, LAB_SEEDS),
    "sweep": (
        tuple(round(float(lr), 6) for lr in torch.logspace(-3, -0.3, 10, dtype=torch.float64)),
        tuple(range(100, 1001, 100)),
        tuple(range(10)),
    ),
}


_RUNS = itertools.count()


@dataclass
class Timing:
    seconds: float
    peak_mb: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grids", nargs="+", choices=list(GRIDS), default=list(GRIDS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    data = prepare_mlp_data(load_dataset("iris"))
    store = tempfile.mkdtemp(prefix="lab2-bench-")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    os.chdir(store)
    _warm_up_pipeline()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread; {os.cpu_count()} "
        f"cores; median of {args.repeats}"
    )
    print(
        f"{'grid':<6} {'cells':>5} {'mode':<26} {'median s':>9} {'runs s':>24} {'peak MB':>8} "
        f"{'ratio':>7}"
    )
    for name in args.grids:
        lrs, iterations, seeds = GRIDS[name]
        n_cells = len(lrs) * len(iterations) * len(seeds)
        modes = _modes(data, lrs, iterations, seeds, cell_figures=name == "lab")
        baseline = None
        for mode, run in modes.items():
            timings = [_measure(run) for _ in range(args.repeats)]
            median = statistics.median(t.seconds for t in timings)
            baseline = baseline or median
            runs = ", ".join(f"{t.seconds:.2f}" for t in timings)
            peak = max(t.peak_mb for t in timings)
            print(
                (
                    f"{name:<6} {n_cells:>5} {mode:<26} {median:>9.2f} {runs:>24} {peak:>8.0f} "
                    f"{median / baseline:>7.3f}"
                ),
                flush=True,
            )


def _modes(
    data: object, lrs: tuple, iterations: tuple, seeds: tuple, cell_figures: bool
) -> dict[str, Callable[[], object]]:
    """The three ways of computing one grid, each a call to time."""
    return {
        "a seed-style loop": lambda: [
            train_cell_loop(data, lr, it, s) for lr in lrs for it in iterations for s in seeds
        ],
        "b batched engine": lambda: train_cells(
            data, [(lr, s) for lr in lrs for s in seeds], iterations
        ),
        "c tracked pipeline": lambda: _tracked(lrs, iterations, seeds, cell_figures),
    }


def _tracked(lrs: tuple, iterations: tuple, seeds: tuple, cell_figures: bool) -> object:
    from lab2.core.params import GridParams
    from lab2.flows.mlp_grid import mlp_grid

    # A new experiment each time: in one it already filled, lab2 would reuse every cell instead of
    # computing it.
    experiment = f"benchmark-{next(_RUNS)}"
    return mlp_grid(
        GridParams(
            lrs=lrs,
            iterations=iterations,
            seeds=seeds,
            cell_figures=cell_figures,
            experiment=experiment,
        )
    )


def _warm_up_pipeline() -> None:
    """Start Prefect's temporary API and create the MLflow store outside the timed runs."""
    from prefect.logging import disable_run_logger

    with disable_run_logger():
        _tracked((0.1,), (1,), (0,), cell_figures=False)


def _measure(run: Callable[[], object]) -> Timing:
    process = psutil.Process()
    start_rss = process.memory_info().rss
    peak = start_rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return Timing(seconds, (max(peak, process.memory_info().rss) - start_rss) / 2**20)


if __name__ == "__main__":
    main()
