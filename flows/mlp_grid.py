"""Q2: train the lab's MLP on every (lr, iterations, seed) cell of a grid and track each cell."""

from __future__ import annotations

import os

import pandas as pd
from prefect import flow, get_client, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import unmapped

from lab2core.mlp import pick_cell, results_frame, split_trajectories
from lab2core.params import (
    LAB_ITERATIONS,
    LAB_LRS,
    LAB_SEEDS,
    Counts,
    DatasetName,
    ExperimentName,
    Hidden,
    LearningRates,
    MLPSetup,
    Protocol,
    Scaling,
    Seed,
    Seeds,
    TaskRunnerName,
    Threads,
    grid_params,
)
from tasks import tracking
from tasks.compute import compare_over_seeds, load_mlp_data, plot_grid, train_shard
from tasks.record import log_best_model, log_grid_summary, log_mlp_cells, publish_seed_table
from tasks.tracking import RunRecord


def grid_task_runner(name: TaskRunnerName = "threads", dask_address: str | None = None) -> TaskRunner:
    """Threads in this process, or Dask through prefect-dask: the cluster at `dask_address`, else a local one."""
    workers = os.cpu_count() or 2
    if name == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    # Workers report to this process's Prefect API, also a temporary one (else each would start its own).
    local = {"n_workers": workers, "threads_per_worker": 1, "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
    return DaskTaskRunner(cluster_kwargs={**local, "env": {"PREFECT_API_URL": str(get_client(sync_client=True).api_url)}})


@flow(name="mlp-grid", task_runner=grid_task_runner())
def mlp_grid(
    lrs: LearningRates = LAB_LRS,
    iterations: Counts = LAB_ITERATIONS,
    seeds: Seeds = LAB_SEEDS,
    dataset: DatasetName = "iris",
    label_column: str | None = None,
    split_seed: Seed = 0,
    hidden: Hidden = 12,
    scaling: Scaling = "var",
    protocol: Protocol = "held-out",
    cell_figures: bool = True,
    torch_threads: Threads = 1,
    experiment: ExperimentName = tracking.DEFAULT_EXPERIMENT,
    parent_run_id: str | None = None,
) -> pd.DataFrame:
    """Q2_1–Q2_2: the MLP grid, each (lr, seed) trajectory trained once in batched shards; one MLflow run per cell."""
    logger = get_run_logger()
    setup = MLPSetup(dataset, split_seed, hidden, scaling, protocol)
    data = load_mlp_data(dataset, label_column, setup)
    parent_record = RunRecord(params={**grid_params(lrs, iterations, seeds), **setup.as_params()})
    shards = split_trajectories(lrs, seeds, n_shards=os.cpu_count() or 2)
    n_cells = len(lrs) * len(iterations) * len(seeds)
    with tracking.pipeline_run(experiment, "mlp-grid", parent_record, attach_to=parent_run_id) as parent:
        progress = create_progress_artifact(0.0, key="mlp-grid-progress", description="MLP cells trained and logged")
        trained = train_shard.map(unmapped(data), shards, unmapped(iterations), setup, range(len(shards)), torch_threads)
        logging, results = [], []
        for shard_index, future in enumerate(as_completed(trained)):
            cells = future.result()
            results += cells
            logging.append(log_mlp_cells.submit(parent, setup, cells, cell_figures, shard_index))
            logger.info("trained %d/%d cells", len(results), n_cells)
        for done, future in enumerate(as_completed(logging), start=1):
            future.result()
            update_progress_artifact(progress, 100.0 * done / len(logging))
        cells = results_frame(results)
        seeds = compare_over_seeds(cells)
        log_grid_summary(parent, cells, seeds, plot_grid(results, cells, seeds))
        model_uri = log_best_model(parent, pick_cell(results, seeds.best["lr"], seeds.best["iterations"]), data.x_val[:5])
        publish_seed_table(seeds)
    logger.info("Q2 grid: %d cells logged to MLflow; best %s, model %s", n_cells, seeds.best_label(), model_uri)
    return cells
