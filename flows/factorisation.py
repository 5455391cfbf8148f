"""Q1: factorise the lab's 3x3 matrix and the centred dataset at rank r; compare with truncated SVD; plot U."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from prefect import flow, get_run_logger

import torch

from lab2.core.data import Dataset
from lab2.core.describe import factorisation_sentence
from lab2.core.identity import tensor_digest
from lab2.core.params import Count, DatasetName, ExperimentName, FactorisationSetup, LearningRate, Rank, Seed
from lab2.tasks import tracking
from lab2.tasks.compute import compare_u, gd_factorise, load_matrices, plot_u, svd_baseline
from lab2.tasks.record import (
    copy_parent_figure,
    describe_pipeline,
    gd_params,
    log_factorisation_summary,
    log_gd_factorisation,
    log_parent_figures,
    log_svd_baseline,
    matrix_dataset,
    reused_factorisation_row,
    svd_params,
)
from lab2.tasks.tracking import FinishedRun, RunRecord
from lab2.tasks.units import identity_of, plan_units, record_units

STEPS = ("gd-factorise", "svd-baseline")


@dataclass(frozen=True)
class FactorisationResult:
    """Q1's table (a row per matrix: losses and angles) and its units (each run, computed or reused)."""

    summary: pd.DataFrame
    units: pd.DataFrame


@flow(name="factorisation")
def factorisation(
    dataset: DatasetName = "iris",
    label_column: str | None = None,
    rank: Rank = 2,
    lr: LearningRate = 0.01,
    epochs: Count = 1000,
    seed: Seed = 0,
    experiment: ExperimentName = tracking.DEFAULT_EXPERIMENT,
    parent_run_id: str | None = None,
    force: bool = False,
) -> FactorisationResult:
    """Q1_1–Q1_3: rank-r factorisation by GD with autograd against the truncated-SVD optimum; U of both.

    A matrix whose GD and SVD runs both exist FINISHED with their identities is reused; `force` recomputes.
    """
    setup = FactorisationSetup(rank, lr, epochs, seed)
    data, matrices = load_matrices(dataset, label_column, rank)
    parent_record = RunRecord(params={"dataset": dataset, **setup.as_params()})
    rows, units = [], []
    with tracking.pipeline_run(experiment, "factorisation", parent_record, attach_to=parent_run_id) as parent:
        for name, matrix in matrices.items():
            digest = data.digest if name == data.name else tensor_digest(matrix)
            identities = {"gd-factorise": identity_of("gd-factorise", gd_params(name, setup), digest)}
            identities["svd-baseline"] = identity_of("svd-baseline", svd_params(name, rank), digest)
            plan = plan_units(experiment, identities, force)
            if plan.to_compute:
                row, run_ids = _compute(parent, name, matrix, data, setup, plan.reused, identities)
            else:
                row, run_ids = _reuse(parent, name, plan.reused, with_figure=name == data.name)
            rows.append(row)
            units.append(plan.table({s: s for s in STEPS}, dict.fromkeys(STEPS, name), run_ids))
        summary, units_done = pd.DataFrame(rows), pd.concat(units, ignore_index=True)
        log_factorisation_summary(parent, summary)
        record_units(parent, "factorisation", units_done)
        if parent_run_id is None:
            describe_pipeline(parent, [factorisation_sentence(list(matrices), rank, lr, epochs)], None, summary, units_done)
    get_run_logger().info("Q1 factorisation at rank %d:\n%s", rank, summary.to_string(index=False))
    return FactorisationResult(summary, units_done)


def _reuse(parent: str, name: str, found: dict[str, FinishedRun], with_figure: bool) -> tuple[dict, dict[str, str]]:
    """Q1 of one matrix from its finished runs; the U scatter copied onto the parent."""
    if with_figure:
        copy_parent_figure(parent, found["gd-factorise"].run_id, "u_scatter")
    return reused_factorisation_row(name, found), {step: run.run_id for step, run in found.items()}


def _compute(
    parent: str,
    name: str,
    matrix: torch.Tensor,
    data: Dataset,
    setup: FactorisationSetup,
    found: dict[str, FinishedRun],
    identities: dict[str, str],
) -> tuple[dict, dict[str, str]]:
    """Q1 of one matrix: GD, SVD, their comparison and figure; logs the runs not already found."""
    gd = gd_factorise(matrix, setup)
    svd = svd_baseline(matrix, setup.rank)
    comparison = compare_u(gd, svd)
    figures = {"u_scatter": plot_u(svd, gd, data)} if name == data.name else {}
    run_ids = {step: run.run_id for step, run in found.items()}
    matrix_data = matrix_dataset(name, matrix, data)
    if "gd-factorise" not in found:
        run_ids["gd-factorise"] = log_gd_factorisation(parent, name, setup, gd, comparison, figures, matrix_data, identities["gd-factorise"])
    if "svd-baseline" not in found:
        run_ids["svd-baseline"] = log_svd_baseline(parent, name, setup.rank, svd, matrix_data, identities["svd-baseline"])
    log_parent_figures(parent, figures)
    return {"matrix": name, "gd_loss": gd.loss, "svd_loss": svd.loss, **comparison}, run_ids
