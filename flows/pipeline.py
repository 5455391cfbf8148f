"""The whole lab: Q1 (factorisation) and Q2 (MLP grid) under one MLflow parent run."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from prefect import flow, get_run_logger

from lab2.flows.factorisation import factorisation
from lab2.flows.mlp_grid import mlp_grid
from lab2.core.params import (
    LAB_ITERATIONS,
    LAB_LRS,
    LAB_SEEDS,
    LAB_SPLIT_SEEDS,
    Count,
    Counts,
    DatasetName,
    Effect,
    ExperimentName,
    Hidden,
    LearningRate,
    LearningRates,
    MLPSetup,
    Protocol,
    Rank,
    Scaling,
    Seed,
    Seeds,
    TaskRunnerName,
    Threads,
    grid_params,
)
from lab2.core.describe import factorisation_sentence, grid_sentence, units_sentence
from lab2.core.seeds import DEFAULT_MIN_EFFECT, SeedComparison
from lab2.tasks import tracking
from lab2.tasks.compute import check_inputs
from lab2.tasks.record import describe_pipeline, runs_view_key
from lab2.tasks.tracking import RunRecord


@dataclass(frozen=True)
class Lab2Result:
    """Everything `lab2 run` reports: the parent run, Q1's table, Q2's cells and seed comparison, the units
    (each run computed or reused) and the link to the runs in the MLflow UI."""

    parent_run_id: str
    factorisation: pd.DataFrame
    cells: pd.DataFrame
    seeds: SeedComparison
    units: pd.DataFrame
    runs_url: str


@flow(name="lab2")
def lab2(
    dataset: DatasetName = "iris",
    label_column: str | None = None,
    rank: Rank = 2,
    gd_lr: LearningRate = 0.01,
    gd_epochs: Count = 1000,
    gd_seed: Seed = 0,
    lrs: LearningRates = LAB_LRS,
    iterations: Counts = LAB_ITERATIONS,
    seeds: Seeds = LAB_SEEDS,
    split_seeds: Seeds = LAB_SPLIT_SEEDS,
    hidden: Hidden = 12,
    scaling: Scaling = "var",
    protocol: Protocol = "held-out",
    cell_figures: bool = True,
    torch_threads: Threads = 1,
    experiment: ExperimentName = tracking.DEFAULT_EXPERIMENT,
    task_runner: TaskRunnerName = "auto",
    dask_address: str | None = None,
    force: bool = False,
    min_effect: Effect = DEFAULT_MIN_EFFECT,
) -> Lab2Result:
    """Lab 2 end to end: Q1 factorisation by GD vs SVD, then the Q2 MLP grid, tracked under one parent run.

    Units with a FINISHED run of their identity are reused; `force` recomputes everything. The grid runs on
    every split seed; `min_effect` is the smallest val-accuracy difference worth detecting (seeds it needs).
    """
    setup = MLPSetup(dataset, split_seeds[0], hidden, scaling, protocol)
    check_inputs(dataset, label_column, rank, setup)
    params = {
        **setup.shared_params(),
        **{"rank": rank, "gd_lr": gd_lr, "gd_epochs": gd_epochs, "gd_seed": gd_seed},
        **grid_params(lrs, iterations, seeds, split_seeds),
    }
    logger = get_run_logger()
    with tracking.pipeline_run(experiment, "lab2", RunRecord(params=params, tags={"lab2.task_runner": task_runner})) as parent:
        logger.info("lab2: MLflow parent run %s of experiment %r at %s", parent, experiment, tracking.redact(tracking.tracking_uri()))
        q1 = factorisation(
            dataset=dataset, label_column=label_column, rank=rank, lr=gd_lr, epochs=gd_epochs, seed=gd_seed,
            experiment=experiment, parent_run_id=parent, force=force,
        )
        logger.info("Q1 factorisation at rank %d:\n%s", rank, q1.summary.to_string(index=False))
        q2 = mlp_grid(
            lrs=lrs, iterations=iterations, seeds=seeds, dataset=dataset, label_column=label_column, split_seeds=split_seeds,
            hidden=hidden, scaling=scaling, protocol=protocol, cell_figures=cell_figures, torch_threads=torch_threads,
            experiment=experiment, parent_run_id=parent, force=force, min_effect=min_effect,
            task_runner=task_runner, dask_address=dask_address,
        )
        what_ran = [factorisation_sentence(list(q1.summary["matrix"]), rank, gd_lr, gd_epochs), grid_sentence(lrs, iterations, seeds, setup.as_params(), split_seeds)]
        units = pd.concat([q1.units, q2.units], ignore_index=True)
        describe_pipeline(parent, what_ran, q2.seeds, q1.summary, units)
        logger.info("Q2 MLP grid over seeds (mean ± sd):\n%s", q2.seeds.display().to_string(index=False))
        logger.info("Best group: %s", q2.seeds.best_label())
        logger.info("Units: %s", units_sentence(units))
    url = tracking.runs_url(experiment, runs_view_key())
    logger.info("MLflow: %s", url)
    return Lab2Result(parent, q1.summary, q2.cells, q2.seeds, units, url)
