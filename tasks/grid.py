"""The grid's shards: which Prefect task runner they run on, and how their cells are trained and
recorded as they come."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pandas as pd
from prefect import Task, get_client, get_run_logger
from prefect.artifacts import ProgressArtifact, update_progress_artifact
from prefect.client.schemas.objects import Artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import unmapped

from lab2.core.data import Dataset
from lab2.core.mlp import (
    CellResult,
    MLPData,
    MLPWeights,
    histories_frame,
    results_frame,
    splits_frame,
)
from lab2.core.params import GridParams, TaskRunnerName
from lab2.core.workload import deal_shards, missing_trajectories
from lab2.tasks.compute import train_shard
from lab2.tasks.flow_run import top_flow_run_id
from lab2.tasks.records import CellKey, log_cells, mlp_datasets
from lab2.tasks.resume import Plan, read_reused_curves, reused_cell_rows
from lab2.tasks.stopping import stoppable

if TYPE_CHECKING:
    from mlflow.data.pandas_dataset import PandasDataset

# cells trained and logged, for `lab2 run`'s progress line
PROGRESS = logging.getLogger("lab2.progress")

R = TypeVar("R")

# From this many cells on, recording every cell's curve (MLflow's ORM, bound to one core per
# process) outweighs starting worker processes, about 5 s each.
PROCESSES_FROM_CELLS = 200


def grid_task_runner(
    name: TaskRunnerName = "auto", dask_address: str | None = None, n_cells: int = 0
) -> TaskRunner:
    """Where the shards and their recording run: `auto` picks threads for a grid of fewer than
    PROCESSES_FROM_CELLS cells, else processes; `threads` in this process; `processes` in
    Prefect's process pool; `dask` through prefect-dask, on the cluster at `dask_address`, else a
    local one."""
    workers = os.cpu_count() or 2
    if name == "auto":
        name = "processes" if n_cells >= PROCESSES_FROM_CELLS else "threads"
    if name == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if name == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    # Workers report to this process's Prefect API, also a temporary one (else each would start its
    # own).
    local = {
        "n_workers": workers,
        "threads_per_worker": 1,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",
    }
    return DaskTaskRunner(
        cluster_kwargs={
            **local,
            "env": {"PREFECT_API_URL": str(get_client(sync_client=True).api_url)},
        }
    )


@dataclass(frozen=True)
class GridCells:
    """Every cell of the grid (computed now or reused), their training-loss curves, and the runs
    written now."""

    table: pd.DataFrame  # lr, iterations, seed, split_seed, accuracies, losses, diverged
    curves: pd.DataFrame  # lr, seed, split_seed, step, loss
    written: dict[CellKey, str]
    # each split seed's training and validation data, as MLflow datasets
    datasets: dict[int, dict[str, PandasDataset]]
    weights: dict[CellKey, MLPWeights]  # the trained weights of each cell computed now


def train_and_record(
    parent_run_id: str, params: GridParams, data: Dataset, splits: Mapping[int, MLPData], plan: Plan
) -> GridCells:
    """Train every (lr, seed) trajectory with a cell to compute, in shards on the grid's task
    runner, and log each shard's cells as soon as it is trained; a progress artifact on the top
    flow run follows the logging."""
    setups = {k: params.mlp_setup(k) for k in splits}
    datasets = {k: mlp_datasets(data, part) for k, part in splits.items()}
    jobs = [(k, shard) for k in splits for shard in _shards(params, plan, k)]
    artifact = ProgressArtifact(
        key="mlp-grid-progress",
        progress=0.0,
        description="MLP cells trained and logged to MLflow",
        flow_run_id=top_flow_run_id(),
    )
    # async_dispatch's stubs add a coroutine; called from sync code, create returns the artifact
    progress = cast(Artifact, artifact.create()).id
    results: list[tuple[int, CellResult]] = []
    written: dict[CellKey, str] = {}
    _report(len(plan.reused), len(plan.reused), len(plan.identities))
    with stoppable(grid_task_runner(params.task_runner, params.dask_address, params.n_cells)) as (
        runner,
        stop_file,
    ):
        trained = _map(
            runner,
            train_shard,
            {
                "data": [splits[k] for k, _ in jobs],
                "trajectories": [shard for _, shard in jobs],
                "iterations": unmapped(params.iterations),
                "setup": [setups[k] for k, _ in jobs],
                "shard_index": range(len(jobs)),
                "torch_threads": params.torch_threads,
                "stop_file": stop_file,
            },
        )
        split_of = {future: k for future, (k, _) in zip(trained, jobs, strict=True)}
        recording: list[PrefectFuture[dict[CellKey, str]]] = []
        for batch, future in enumerate(as_completed(trained)):
            cells = [
                (split_of[future], c)
                for c in future.result()
                if (c.lr, c.iterations, c.seed, split_of[future]) not in plan.reused
            ]
            results += cells
            get_run_logger().info(
                "trained %d/%d cells", len(plan.reused) + len(results), len(plan.identities)
            )
            _report(len(plan.reused) + len(results), len(plan.reused), len(plan.identities))
            recording.append(
                runner.submit(
                    log_cells,
                    {
                        "parent_run_id": parent_run_id,
                        "setups": setups,
                        "cells": cells,
                        "cell_figures": params.cell_figures,
                        "batch": batch,
                        "identities": plan.identities,
                        "datasets": datasets,
                        "stop_file": stop_file,
                    },
                )
            )
        for done, logged in enumerate(as_completed(recording), start=1):
            written |= logged.result()
            update_progress_artifact(progress, 100.0 * done / len(recording))
            _report(
                len(plan.reused) + len(results),
                len(plan.reused) + len(written),
                len(plan.identities),
            )
    update_progress_artifact(progress, 100.0)  # also when every cell was reused
    _report(len(plan.identities), len(plan.identities), len(plan.identities))
    weights = {(c.lr, c.iterations, c.seed, k): c.weights for k, c in results}
    return GridCells(
        _table(splits, results, plan), _curves(splits, results, plan), written, datasets, weights
    )


def _map(
    runner: TaskRunner, task: Task[..., R], parameters: dict[str, Any]
) -> list[PrefectFuture[R]]:
    """`runner.map`: a future of `task`'s return value per mapped index."""
    # TaskRunner.map's stubs take only a task that may return a coroutine, and type each future's
    # result as a future
    return cast("list[PrefectFuture[R]]", runner.map(cast("Task[..., Any]", task), parameters))


def _report(trained: int, logged: int, cells: int) -> None:
    """The counts behind a progress line; nothing is printed unless a handler listens (`lab2 run`
    adds one)."""
    PROGRESS.info(
        "%d/%d cells trained, %d logged",
        trained,
        cells,
        logged,
        extra={"trained": trained, "logged": logged, "cells": cells},
    )


def _shards(params: GridParams, plan: Plan, split_seed: int) -> list[list[tuple[float, int]]]:
    """The (lr, seed) trajectories of one split seed with a cell to compute, dealt into a shard per
    core."""
    done = {key[:3] for key in plan.reused if key[3] == split_seed}
    return deal_shards(
        missing_trajectories(params.lrs, params.iterations, params.seeds, done), os.cpu_count() or 2
    )


def _table(
    splits: Mapping[int, MLPData], results: Sequence[tuple[int, CellResult]], plan: Plan
) -> pd.DataFrame:
    rows = reused_cell_rows(plan.reused)
    return splits_frame(
        {
            k: results_frame(
                [c for s, c in results if s == k], [r for r in rows if r["split_seed"] == k]
            )
            for k in splits
        }
    )


def _curves(
    splits: Mapping[int, MLPData], results: Sequence[tuple[int, CellResult]], plan: Plan
) -> pd.DataFrame:
    computed = [
        histories_frame([c for s, c in results if s == k]).assign(split_seed=k) for k in splits
    ]
    reused = read_reused_curves(plan.reused, trained={(c.lr, c.seed, s) for s, c in results})
    return pd.concat([*computed, reused], ignore_index=True).astype({"step": int, "loss": float})
