"""Q2: train the lab's MLP on every (lr, iterations, seed) cell of a grid, for each split seed, and track each cell."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

import pandas as pd
from prefect import flow, get_client, get_run_logger
from prefect.artifacts import update_progress_artifact
from prefect.futures import as_completed
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import unmapped

from lab2.core.mlp import CellResult, MLPData, curves_frame, deal_shards, missing_trajectories, results_frame, splits_frame
from lab2.core.params import (
    LAB_ITERATIONS,
    LAB_LRS,
    LAB_SEEDS,
    LAB_SPLIT_SEEDS,
    Counts,
    DatasetName,
    Effect,
    ExperimentName,
    Hidden,
    LearningRates,
    MLPSetup,
    Protocol,
    Scaling,
    Seeds,
    TaskRunnerName,
    Threads,
    grid_params,
)
from lab2.core.seeds import DEFAULT_MIN_EFFECT, SeedComparison
from lab2.core.data import Dataset
from lab2.core.describe import grid_sentence
from lab2.tasks import tracking
from lab2.tasks.compute import compare_over_seeds, load_data, plot_grid, split_for_mlp, train_shard
from lab2.tasks.record import (
    BestCell,
    cell_identities,
    cell_key,
    cell_name,
    create_progress,
    describe_pipeline,
    log_best_model,
    log_grid_summary,
    log_mlp_cells,
    mlp_datasets,
    publish_seed_table,
    read_reused_curves,
    reused_cell_rows,
)
from lab2.tasks.tracking import RunRecord
from lab2.tasks.units import plan_units, record_units

if TYPE_CHECKING:
    from mlflow.data.pandas_dataset import PandasDataset


# From this many cells on, recording every cell's curve (MLflow's ORM, bound to one core per process)
# outweighs starting worker processes, about 5 s each.
PROCESSES_FROM_CELLS = 200


def grid_task_runner(name: TaskRunnerName = "auto", dask_address: str | None = None, n_cells: int = 0) -> TaskRunner:
    """Where the shards and their recording run: `auto` picks threads for a grid of fewer than
    PROCESSES_FROM_CELLS cells, else processes; `threads` in this process; `processes` in Prefect's process
    pool; `dask` through prefect-dask, on the cluster at `dask_address`, else a local one."""
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
    # Workers report to this process's Prefect API, also a temporary one (else each would start its own).
    local = {"n_workers": workers, "threads_per_worker": 1, "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
    return DaskTaskRunner(cluster_kwargs={**local, "env": {"PREFECT_API_URL": str(get_client(sync_client=True).api_url)}})


@dataclass(frozen=True)
class GridSpec:
    """What the grid of every split seed shares: its axes, where its runs go and how they are recorded."""

    lrs: Sequence[float]
    iterations: Sequence[int]
    seeds: Sequence[int]
    experiment: str
    cell_figures: bool
    torch_threads: int
    force: bool


@dataclass(frozen=True)
class SplitGrid:
    """The grid on one split seed: its data, table of cells, computed results, training curves and units."""

    data: MLPData
    cells: pd.DataFrame
    results: list[CellResult]
    curves: pd.DataFrame
    units: pd.DataFrame
    run_ids: dict[tuple[float, int, int], str]
    identities: dict[tuple[float, int, int], str]
    datasets: dict[str, PandasDataset]


@dataclass(frozen=True)
class GridResult:
    """Q2's table of cells (over every split seed), their comparison over seeds, its units and the winner model's URI."""

    cells: pd.DataFrame
    seeds: SeedComparison
    units: pd.DataFrame
    model_uri: str


@flow(name="mlp-grid")
def mlp_grid(
    lrs: LearningRates = LAB_LRS,
    iterations: Counts = LAB_ITERATIONS,
    seeds: Seeds = LAB_SEEDS,
    dataset: DatasetName = "iris",
    label_column: str | None = None,
    split_seeds: Seeds = LAB_SPLIT_SEEDS,
    hidden: Hidden = 12,
    scaling: Scaling = "var",
    protocol: Protocol = "held-out",
    cell_figures: bool = True,
    torch_threads: Threads = 1,
    experiment: ExperimentName = tracking.DEFAULT_EXPERIMENT,
    parent_run_id: str | None = None,
    force: bool = False,
    min_effect: Effect = DEFAULT_MIN_EFFECT,
    task_runner: TaskRunnerName = "auto",
    dask_address: str | None = None,
) -> GridResult:
    """Q2_1–Q2_2: the MLP grid, each (lr, seed) trajectory trained once in batched shards; one MLflow run per cell.

    Every split seed is a split of the data of its own, with the whole grid trained on it. Cells that
    already have a FINISHED run of their identity are reused, and only trajectories with a missing cell
    are trained; `force` recomputes every cell. Groups are compared seed by seed (`min_effect`: the
    smallest difference of val accuracy worth detecting, for the number of seeds it needs). The shards
    and their logging run on `task_runner`: `auto` (threads, processes from PROCESSES_FROM_CELLS cells),
    threads here, Prefect's process pool, or Dask (the cluster at `dask_address`, else a local one).
    """
    logger = get_run_logger()
    setups = {k: MLPSetup(dataset, k, hidden, scaling, protocol) for k in split_seeds}
    raw = load_data(dataset, label_column)
    spec = GridSpec(lrs, iterations, seeds, experiment, cell_figures, torch_threads, force)
    parent_record = RunRecord(params={**grid_params(lrs, iterations, seeds, split_seeds), **setups[split_seeds[0]].shared_params()})
    with tracking.pipeline_run(experiment, "mlp-grid", parent_record, attach_to=parent_run_id) as parent:
        progress = create_progress("MLP cells trained and logged to MLflow")
        n_cells = len(lrs) * len(iterations) * len(seeds) * len(split_seeds)
        with grid_task_runner(task_runner, dask_address, n_cells) as runner:
            grids = {k: _grid_of_split(runner, parent, spec, setups[k], raw, progress, (index, len(split_seeds))) for index, k in enumerate(split_seeds)}
        cells = splits_frame({k: grid.cells for k, grid in grids.items()})
        split = min(split_seeds)
        first = grids[split]
        over_seeds = compare_over_seeds(cells, first.data.val_rows, min_effect)
        curves = pd.concat([grid.curves for grid in grids.values()], ignore_index=True)
        log_grid_summary(parent, cells, over_seeds, plot_grid(curves, cells, over_seeds), first.data.val_rows)
        model_uri = log_best_model(parent, _best_cell(first, over_seeds, min(seeds), split), first.data, setups[split], over_seeds, first.datasets)
        publish_seed_table(over_seeds)
        units = pd.concat([grid.units for grid in grids.values()], ignore_index=True)
        record_units(parent, "mlp_grid", units)
        if parent_run_id is None:
            describe_pipeline(parent, [grid_sentence(lrs, iterations, seeds, setups[split].as_params(), split_seeds)], over_seeds, None, units)
    n_reused = int(units["reused"].sum())
    logger.info(
        "Q2 grid: %d cells logged to MLflow, %d reused; best %s, model %s\n%s",
        len(units) - n_reused, n_reused, over_seeds.best_label(), model_uri, over_seeds.display().to_string(index=False),
    )
    return GridResult(cells, over_seeds, units, model_uri)


def _grid_of_split(
    runner: TaskRunner, parent: str, spec: GridSpec, setup: MLPSetup, raw: Dataset, progress: UUID, part: tuple[int, int]
) -> SplitGrid:
    """The grid on one split seed: reuse what MLflow holds, train the rest in shards, log each cell as it comes."""
    logger = get_run_logger()
    where = f" (split seed {setup.split_seed})" if part[1] > 1 else ""
    data = split_for_mlp(raw, setup)
    identities = cell_identities(setup, spec.lrs, spec.iterations, spec.seeds, spec.cell_figures, raw.digest)
    plan = plan_units(spec.experiment, identities, spec.force)
    reused = plan.reused
    datasets = mlp_datasets(raw, data)
    n_cells = len(identities)
    shards = deal_shards(missing_trajectories(spec.lrs, spec.iterations, spec.seeds, done=reused), n_shards=os.cpu_count() or 2)
    logger.info("%d/%d cells reused from MLflow%s; training %d trajectories", len(reused), n_cells, where, sum(map(len, shards)))
    shard_args = {"data": unmapped(data), "trajectories": shards, "iterations": unmapped(spec.iterations), "setup": setup,
                  "shard_index": range(len(shards)), "torch_threads": spec.torch_threads}
    trained = runner.map(train_shard, shard_args)
    logging, results = {}, []
    for batch, future in enumerate(as_completed(trained)):
        cells = [c for c in future.result() if cell_key(c) not in reused]
        results += cells
        log_args = {"parent_run_id": parent, "setup": setup, "cells": cells, "cell_figures": spec.cell_figures, "batch": batch, "identities": identities,
                    "datasets": datasets}
        logging[runner.submit(log_mlp_cells, log_args)] = cells
        logger.info("trained %d/%d cells%s", len(reused) + len(results), n_cells, where)
    run_ids = {key: run.run_id for key, run in reused.items()}
    for done, future in enumerate(as_completed(list(logging)), start=1):
        run_ids |= dict(zip(map(cell_key, logging[future]), future.result()))
        update_progress_artifact(progress, 100.0 * (part[0] + done / len(logging)) / part[1])
    update_progress_artifact(progress, 100.0 * (part[0] + 1) / part[1])  # also when every cell was reused
    curves = curves_frame(results, read_reused_curves(reused, trained={(c.lr, c.seed) for c in results}))
    names = {key: cell_name(*key, setup.split_seed) for key in identities}
    units = plan.table(dict.fromkeys(identities, "mlp"), names, run_ids)
    return SplitGrid(data, results_frame(results, reused_cell_rows(reused)), results, curves, units, run_ids, identities, datasets)


def _best_cell(grid: SplitGrid, over_seeds: SeedComparison, seed: int, split_seed: int) -> BestCell:
    """The best group's cell of `seed` in the grid of one split seed."""
    key = (float(over_seeds.best["lr"]), int(over_seeds.best["iterations"]), seed)
    row = grid.cells.set_index(["lr", "iterations", "seed"]).loc[key]
    return BestCell(*key, split_seed, float(row["val_accuracy"]), grid.run_ids[key], grid.identities[key])
