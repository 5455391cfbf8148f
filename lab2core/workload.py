"""The grid's workload: its (lr, seed) trajectories dealt into shards, and what a run costs on a
machine.

The costs are measured on the 2-core machine this project is built on
(`benchmarks/lab_benchmark.py` and timed runs of `train_trajectories` and `factorise_gd`): per
step of a shard about 0.4 ms, plus 25 µs per trajectory in it; 0.15 ms per factorisation epoch of
a matrix. Memory goes to the points a curve keeps, not to the steps taken: a cell's curve keeps
at most CURVE_POINTS + 1 points (about 48 bytes each while training, 40 bytes until logged); a
factorisation keeps its loss per epoch. MLflow's SQLite store takes about 40 ms a run and 0.15 ms
a point.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

# A cell's training-loss curve keeps every k-th step, at most this many points (and its last step).
CURVE_POINTS = 100
SECONDS_PER_SHARD_STEP = 4e-4
SECONDS_PER_TRAJECTORY_STEP = 2.5e-5
SECONDS_PER_GD_EPOCH = 1.5e-4  # one matrix
# a trajectory's step per training row × (features + classes) × hidden unit: 100,000 × 50 data
SECONDS_PER_TRAJECTORY_WEIGHT = 2.2e-10
SECONDS_PER_GD_ENTRY = 8e-9  # a factorisation epoch per matrix entry × rank (100,000 × 50, float64)
IRIS_SHAPE = (150, 4)
BYTES_PER_TRAJECTORY_POINT = 48
BYTES_PER_CURVE_POINT = 40
# an MLflow run written whole on SQLite (over HTTP about 6 times as long)
SECONDS_PER_CELL_RUN = 0.04
SECONDS_PER_CURVE_POINT = 1.5e-4  # a metric row in MLflow's SQLite store


def curve_steps(iterations: int) -> list[int]:
    """The steps a cell of `iterations` steps keeps of its training-loss curve: every step up to
    CURVE_POINTS steps, else every k-th step with k = ⌈iterations / CURVE_POINTS⌉, and the last
    one."""
    steps = list(range(0, iterations, -(-iterations // CURVE_POINTS)))
    return steps if steps[-1] == iterations - 1 else [*steps, iterations - 1]


def deal_shards(pairs: Sequence[tuple[float, int]], n_shards: int) -> list[list[tuple[float, int]]]:
    """`pairs` dealt in order into at most `n_shards` near-equal contiguous shards (none if no
    pairs)."""
    if not pairs:
        return []
    n_shards = max(1, min(n_shards, len(pairs)))
    size, extra = divmod(len(pairs), n_shards)
    bounds = [k * size + min(k, extra) for k in range(n_shards + 1)]
    return [list(pairs[bounds[k] : bounds[k + 1]]) for k in range(n_shards)]


def missing_trajectories(
    lrs: Sequence[float],
    iterations: Sequence[int],
    seeds: Sequence[int],
    done: Collection[tuple[float, int, int]],
) -> list[tuple[float, int]]:
    """The (lr, seed) trajectories with at least one (lr, iterations, seed) cell not in `done`, in
    grid order."""
    return [
        (lr, seed)
        for lr in lrs
        for seed in seeds
        if any((lr, it, seed) not in done for it in iterations)
    ]


@dataclass(frozen=True)
class RunCost:
    """What a run is expected to take: seconds to train and log it on `cores` cores, bytes of memory
    at its peak."""

    seconds: float
    bytes: int


def data_shape(dataset: str) -> tuple[int, int]:
    """Rows and feature columns of a dataset (Iris's for a built-in one; a CSV's from its lines and
    header, without parsing it), for a cost estimate; Iris's when the file cannot be read."""
    try:
        with open(dataset, "rb") as file:
            header = file.readline().decode(errors="replace")
            rows = sum(1 for line in file if line.strip())
    except OSError:
        return IRIS_SHAPE
    return rows, max(1, header.count(",")) if rows else IRIS_SHAPE[1]


def run_cost(
    n_trajectories: int,
    iterations: Sequence[int],
    n_splits: int,
    gd_epochs: int,
    cores: int,
    shape: tuple[int, int] = IRIS_SHAPE,
    hidden: int = 12,
    rank: int = 2,
) -> RunCost:
    """The expected cost of training `n_trajectories` (lr, seed) trajectories on each of `n_splits`
    split seeds for max(iterations) steps, a shard per core, of logging every iteration count as
    a cell with its curve, and of factorising two matrices for `gd_epochs` epochs, on data of
    `shape` (rows, features: two thirds of the rows train)."""
    steps = max(iterations, default=0)
    rows, features = shape
    weights = rows * 2 / 3 * (features + 3) * hidden  # about 3 classes
    per_shard = steps * (
        SECONDS_PER_SHARD_STEP
        + (SECONDS_PER_TRAJECTORY_STEP + weights * SECONDS_PER_TRAJECTORY_WEIGHT)
        * math.ceil(n_trajectories / max(1, min(cores, n_trajectories)))
    )
    shards = min(cores, n_trajectories) * n_splits
    points = n_trajectories * n_splits * sum(min(it, CURVE_POINTS + 1) for it in iterations)
    logging = (
        n_trajectories * n_splits * len(iterations) * SECONDS_PER_CELL_RUN
        + points * SECONDS_PER_CURVE_POINT
    )
    gd = gd_epochs * (2 * SECONDS_PER_GD_EPOCH + rows * features * rank * SECONDS_PER_GD_ENTRY)
    seconds = per_shard * math.ceil(shards / cores) + logging + gd
    memory = (
        points * (BYTES_PER_TRAJECTORY_POINT + BYTES_PER_CURVE_POINT)
        + gd_epochs * BYTES_PER_CURVE_POINT
    )
    return RunCost(seconds, memory)
