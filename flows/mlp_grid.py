"""Q2: train the lab's MLP on every (lr, iterations, seed) cell of a grid and track each cell."""

from __future__ import annotations

import os

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
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
    grid_params,
)
from tasks import tracking
from tasks.compute import load_data, load_mlp_data, plot_grid, train_shard
from tasks.record import (
    cell_identities,
    cell_key,
    cell_name,
    find_finished,
    log_grid_summary,
    log_mlp_cells,
    log_units,
    reused_cell_rows,
    units_table,
)
from tasks.tracking import RunRecord


@flow(name="mlp-grid", task_runner=ThreadPoolTaskRunner(max_workers=os.cpu_count() or 2))
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
    identities = cell_identities(setup, lrs, iterations, seeds, cell_figures, load_data(dataset, label_column).digest)
    parent_record = RunRecord(params={**grid_params(lrs, iterations, seeds), **setup.as_params()})
    n_cells = len(identities)
    with tracking.pipeline_run(experiment, "mlp-grid", parent_record, attach_to=parent_run_id) as parent:
        reused = {} if force else find_finished(experiment, identities)
        shards = deal_shards(missing_trajectories(lrs, iterations, seeds, done=reused), n_shards=os.cpu_count() or 2)
        logger.info("%d/%d cells reused from MLflow; training %d trajectories", len(reused), n_cells, sum(map(len, shards)))
        progress = create_progress_artifact(0.0, key="mlp-grid-progress", description="MLP cells trained and logged")
        trained = train_shard.map(unmapped(data), shards, unmapped(iterations), hidden, range(len(shards)))
        logging, results = {}, []
        for shard_index, future in enumerate(as_completed(trained)):
            cells = [c for c in future.result() if cell_key(c) not in reused]
            results += cells
            logging[log_mlp_cells.submit(parent, setup, cells, cell_figures, shard_index, identities)] = cells
            logger.info("trained %d/%d cells", len(reused) + len(results), n_cells)
        run_ids = {key: run.run_id for key, run in reused.items()}
        for done, future in enumerate(as_completed(list(logging)), start=1):
            run_ids |= dict(zip(map(cell_key, logging[future]), future.result()))
            update_progress_artifact(progress, 100.0 * done / len(logging))
        cells = results_frame(results, reused_cell_rows(reused))
        log_grid_summary(parent, cells, plot_grid(cells))
        names = {key: cell_name(*key) for key in identities}
        log_units(parent, "mlp_grid", units_table(dict.fromkeys(identities, "mlp"), names, identities, run_ids, reused))
    logger.info("Q2 grid: %d cells logged to MLflow, %d reused", n_cells - len(reused), len(reused))
    return cells
