"""Q2: train the lab's MLP on every (lr, iterations, seed) cell of a grid and track each cell."""

from __future__ import annotations

import os

import pandas as pd
from prefect import flow, get_client, get_run_logger
from prefect.artifacts import update_progress_artifact
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import unmapped

from lab2core.mlp import deal_shards, missing_trajectories, results_frame
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
from tasks.compute import compare_over_seeds, load_data, load_mlp_data, plot_grid, train_shard, train_winner
from lab2core.describe import grid_sentence
from tasks.record import (
    cell_identities,
    cell_key,
    cell_name,
    create_progress,
    describe_pipeline,
    find_finished,
    log_best_model,
    log_grid_summary,
    log_mlp_cells,
    log_units,
    mlp_datasets,
    publish_seed_table,
    read_reused_curves,
    reused_cell_rows,
    units_table,
)
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
    force: bool = False,
) -> pd.DataFrame:
    """Q2_1–Q2_2: the MLP grid, each (lr, seed) trajectory trained once in batched shards; one MLflow run per cell.

    Cells that already have a FINISHED run of their identity are reused, and only trajectories with a
    missing cell are trained; `force` recomputes every cell.
    """
    logger = get_run_logger()
    setup = MLPSetup(dataset, split_seed, hidden, scaling, protocol)
    data = load_mlp_data(dataset, label_column, setup)
    raw = load_data(dataset, label_column)
    identities = cell_identities(setup, lrs, iterations, seeds, cell_figures, raw.digest)
    parent_record = RunRecord(params={**grid_params(lrs, iterations, seeds), **setup.as_params()})
    n_cells = len(identities)
    with tracking.pipeline_run(experiment, "mlp-grid", parent_record, attach_to=parent_run_id) as parent:
        datasets = mlp_datasets(raw, data)
        reused = {} if force else find_finished(experiment, identities)
        shards = deal_shards(missing_trajectories(lrs, iterations, seeds, done=reused), n_shards=os.cpu_count() or 2)
        logger.info("%d/%d cells reused from MLflow; training %d trajectories", len(reused), n_cells, sum(map(len, shards)))
        progress = create_progress("MLP cells trained and logged to MLflow")
        trained = train_shard.map(unmapped(data), shards, unmapped(iterations), setup, range(len(shards)), torch_threads)
        logging, results = {}, []
        for batch, future in enumerate(as_completed(trained)):
            cells = [c for c in future.result() if cell_key(c) not in reused]
            results += cells
            logging[log_mlp_cells.submit(parent, setup, cells, cell_figures, batch, identities, datasets)] = cells
            logger.info("trained %d/%d cells", len(reused) + len(results), n_cells)
        run_ids = {key: run.run_id for key, run in reused.items()}
        for done, future in enumerate(as_completed(list(logging)), start=1):
            run_ids |= dict(zip(map(cell_key, logging[future]), future.result()))
            update_progress_artifact(progress, 100.0 * done / len(logging))
        cells = results_frame(results, reused_cell_rows(reused))
        over_seeds = compare_over_seeds(cells)
        curves = read_reused_curves(reused, trained={(c.lr, c.seed) for c in results})
        log_grid_summary(parent, cells, over_seeds, plot_grid(results, curves, cells, over_seeds))
        best = over_seeds.best
        key = (float(best["lr"]), int(best["iterations"]), min(seeds))
        winner = train_winner(data, *key, setup)  # its cell may be a reused run
        model_uri = log_best_model(parent, winner, setup, data.x_val[:5], run_ids[key], identities[key], over_seeds, datasets)
        publish_seed_table(over_seeds)
        names = {key: cell_name(*key) for key in identities}
        log_units(parent, "mlp_grid", units_table(dict.fromkeys(identities, "mlp"), names, identities, run_ids, reused))
        if parent_run_id is None:
            describe_pipeline(parent, [grid_sentence(lrs, iterations, seeds, setup.as_params())], over_seeds, None)
    logger.info(
        "Q2 grid: %d cells logged to MLflow, %d reused; best %s, model %s\n%s",
        n_cells - len(reused), len(reused), over_seeds.best_label(), model_uri, over_seeds.display().to_string(index=False),
    )
    return cells
