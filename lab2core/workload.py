"""The grid's workload: its (lr, seed) trajectories dealt into shards, and what training it costs on a machine.

The costs are measured on the 2-core machine this project is built on (`benchmarks/lab_benchmark.py` and timed
runs of `train_trajectories`): per step of a shard about 0.4 ms, plus 25 µs per trajectory in
it; the loss history keeps about 48 bytes per trajectory and step while training, each cell keeps its curve
(about 40 bytes a point) until it is logged, and MLflow's SQLite store takes about 40 ms a run and 0.15 ms a point.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

SECONDS_PER_SHARD_STEP = 4e-4
SECONDS_PER_TRAJECTORY_STEP = 2.5e-5
BYTES_PER_TRAJECTORY_STEP = 48
BYTES_PER_CURVE_POINT = 40
SECONDS_PER_CELL_RUN = 0.04  # an MLflow run written whole on SQLite (over HTTP about 6 times as long)
SECONDS_PER_CURVE_POINT = 1.5e-4  # a metric row in MLflow's SQLite store


def deal_shards(pairs: Sequence[tuple[float, int]], n_shards: int) -> list[list[tuple[float, int]]]:
    """`pairs` dealt in order into at most `n_shards` near-equal contiguous shards (none if no pairs)."""
    if not pairs:
        return []
    n_shards = max(1, min(n_shards, len(pairs)))
    size, extra = divmod(len(pairs), n_shards)
    bounds = [k * size + min(k, extra) for k in range(n_shards + 1)]
    return [list(pairs[bounds[k] : bounds[k + 1]]) for k in range(n_shards)]


def missing_trajectories(
    lrs: Sequence[float], iterations: Sequence[int], seeds: Sequence[int], done: Collection[tuple[float, int, int]]
) -> list[tuple[float, int]]:
    """The (lr, seed) trajectories with at least one (lr, iterations, seed) cell not in `done`, in grid order."""
    return [(lr, seed) for lr in lrs for seed in seeds if any((lr, it, seed) not in done for it in iterations)]


@dataclass(frozen=True)
class TrainingCost:
    """What a grid is expected to take: seconds to train and log it on `cores` cores, bytes of memory at its peak."""

    seconds: float
    bytes: int


def training_cost(n_trajectories: int, iterations: Sequence[int], n_splits: int, cores: int) -> TrainingCost:
    """The expected cost of training `n_trajectories` (lr, seed) trajectories on each of `n_splits` split seeds for
    max(iterations) steps, a shard per core, and of logging every iteration count as a cell with its curve."""
    steps = max(iterations)
    shards = min(cores, n_trajectories) * n_splits
    per_shard = steps * (SECONDS_PER_SHARD_STEP + SECONDS_PER_TRAJECTORY_STEP * math.ceil(n_trajectories / min(cores, n_trajectories)))
    points = n_trajectories * n_splits * sum(iterations)
    logging = n_trajectories * n_splits * len(iterations) * SECONDS_PER_CELL_RUN + points * SECONDS_PER_CURVE_POINT
    history = n_trajectories * n_splits * steps * BYTES_PER_TRAJECTORY_STEP
    return TrainingCost(per_shard * math.ceil(shards / cores) + logging, history + points * BYTES_PER_CURVE_POINT)
