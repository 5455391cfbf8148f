"""Prefect tasks that compute: each one calls lab2core and returns its result."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd
import psutil
import torch
from prefect import get_run_logger, task

from lab2.core.data import Dataset, factorisation_matrices, load_dataset
from lab2.core.factorise import (
    Factorisation,
    column_angles,
    factorise_gd,
    principal_angles,
    truncated_svd,
)
from lab2.core.mlp import CellResult, MLPData, prepare_mlp_data, train_cells
from lab2.core.params import FactorisationSetup, MLPSetup, RunParams
from lab2.core.seeds import SeedComparison
from lab2.core.settings import settings
from lab2.tasks.figures import seed_comparison, u_scatter_png
from lab2.tasks.layout import U_SCATTER
from lab2.tasks.stopping import stop_asked


@task
def check_inputs(params: RunParams) -> None:
    """Fail before any run is tracked if the data does not fit every stage of the flow (every split
    seed), or the run would not fit in this machine's memory; logs what to know of the data."""
    for note in params.check_data():
        get_run_logger().info(note)
    params.check_size(
        psutil.virtual_memory().available, os.cpu_count() or 1, settings().max_seconds
    )


@task
def load_data(dataset: str, label_column: str | None = None) -> Dataset:
    """Load a built-in dataset or a checked CSV."""
    return load_dataset(dataset, label_column)


@task
def load_matrices(
    dataset: str, label_column: str | None
) -> tuple[Dataset, dict[str, torch.Tensor]]:
    """The dataset and the matrices Q1 factorises: the lab's 3×3 and the dataset's centred
    features."""
    data = load_dataset(dataset, label_column)
    return data, factorisation_matrices(data)


@task
def split_for_mlp(data: Dataset, setup: MLPSetup) -> MLPData:
    """The dataset scaled and split for the MLP."""
    return prepare_mlp_data(
        data, setup.split_seed, setup.scaling, setup.protocol, setup.scaling_rows
    )


@task
def gd_factorise(matrix: torch.Tensor, setup: FactorisationSetup) -> Factorisation:
    """Rank-r factorisation by gradient descent with autograd."""
    return factorise_gd(matrix, setup.rank, setup.lr, setup.epochs, setup.seed)


@task
def svd_baseline(matrix: torch.Tensor, rank: int) -> Factorisation:
    """Truncated SVD: the optimum of the same loss."""
    return truncated_svd(matrix, rank)


@task
def compare_u(gd: Factorisation, svd: Factorisation) -> dict[str, float]:
    """Degrees between GD's and SVD's U: principal angles (same subspace?) and column angles (same
    orientation?); none for a GD that diverged."""
    if gd.diverged:
        return {}
    principal = principal_angles(gd.u, svd.u).tolist()
    columns = column_angles(gd.u, svd.u).tolist()
    return {
        **{f"principal_angle_{k + 1}_deg": a for k, a in enumerate(principal)},
        **{f"u_column_angle_{k + 1}_deg": a for k, a in enumerate(columns)},
    }


@task
def plot_u(svd: Factorisation, gd: Factorisation, data: Dataset, matrix: str) -> dict[str, bytes]:
    """Scatter of U's first two columns, SVD beside GD, by class, as PNG: for the dataset's matrix
    (the lab's 3×3 has no classes); a GD that diverged has no U to show."""
    if matrix != data.name:
        return {}
    u_gd = None if gd.diverged else gd.u.numpy()
    return {
        U_SCATTER: u_scatter_png(
            svd.u.numpy(), u_gd, data.labels.numpy(), data.class_names, data.label_name
        ).result()
    }


@task(task_run_name="train-shard-{shard_index}")
def train_shard(
    data: MLPData,
    trajectories: Sequence[tuple[float, int]],
    iterations: Sequence[int],
    setup: MLPSetup,
    shard_index: int,
    torch_threads: int = 1,
    stop_file: str | None = None,
) -> list[CellResult]:
    """Train a shard of (lr, seed) trajectories as one batched program; one result per cell. Stops
    (raises Stopped) within a chunk of steps once `stop_file` exists."""
    # in the process that runs the shard (a thread pool's or a worker's)
    torch.set_num_threads(torch_threads)
    should_stop = (lambda: stop_asked(stop_file)) if stop_file else None
    return train_cells(data, trajectories, iterations, setup.hidden, setup.protocol, should_stop)


@task
def compare_over_seeds(
    cells: pd.DataFrame, val_rows: int | None, min_effect: float | None
) -> SeedComparison:
    """Group the cells by everything but the seeds: statistics, bounded 95% intervals, paired
    comparisons (computed beside the figures that show them)."""
    return seed_comparison(cells, val_rows, min_effect).result()
