"""Q1: factorise the lab's 3×3 matrix and the centred dataset at rank r by GD, beside truncated SVD;
plot U."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from prefect import flow, get_run_logger

from lab2.core.describe import factorisation_sentence, q1_notes
from lab2.core.params import FactorisationParams
from lab2.tasks.compute import (
    check_inputs,
    compare_u,
    gd_factorise,
    load_matrices,
    plot_u,
    svd_baseline,
)
from lab2.tasks.flow_run import pipeline_run
from lab2.tasks.outputs import describe_parent, publish_factorisation
from lab2.tasks.records import record_factorisation
from lab2.tasks.resume import factorisation_units, plan_units, reuse_factorisation, settle
from lab2.tasks.tracking import RunRecord


@dataclass(frozen=True)
class FactorisationResult:
    """Q1's table (a row per matrix: losses and angles), its units (each run, computed or reused)
    and what ran."""

    summary: pd.DataFrame
    units: pd.DataFrame
    what_ran: str


@flow(name="factorisation")
def factorisation(params: FactorisationParams = FactorisationParams()) -> FactorisationResult:
    """Q1 on its own, under an MLflow parent run of its own."""
    check_inputs(params)
    with pipeline_run(
        params.experiment, "factorisation", RunRecord(params=params.model_dump())
    ) as parent:
        q1 = factorise_matrices(parent, params)
        describe_parent(parent, [q1.what_ran], q1.units, q1.summary)
        settle(parent)
    return q1


@flow(name="factorise-matrices", validate_parameters=False)  # called with a validated model
def factorise_matrices(parent_run_id: str, params: FactorisationParams) -> FactorisationResult:
    """Q1_1–Q1_3 under `parent_run_id`: for each matrix gd → svd → compare U → plot U → record; a
    matrix whose runs MLflow already holds is reused."""
    data, matrices = load_matrices(params.dataset, params.label_column)
    plan = plan_units(
        params.experiment, *factorisation_units(matrices, data, params.gd_setup), params.force
    )
    to_compute = {matrix for matrix, _ in plan.to_compute}
    rows: list[dict[str, object]] = []
    written: dict[tuple[str, str], str] = {}  # (matrix, step) → run id
    for name, matrix in matrices.items():
        if name not in to_compute:
            rows.append(reuse_factorisation(parent_run_id, name, matrix, data, plan))
            continue
        gd = gd_factorise(matrix, params.gd_setup)
        svd = svd_baseline(matrix, params.rank)
        angles = compare_u(gd, svd)
        figures = plot_u(svd, gd, data, name)
        row, runs = record_factorisation(
            parent_run_id, name, matrix, data, params.gd_setup, plan, gd, svd, angles, figures
        )
        rows.append(row)
        written |= runs
    summary, units = pd.DataFrame(rows), plan.table(written)
    publish_factorisation(parent_run_id, summary, units)
    losses = "; ".join(
        f"{r.matrix}: GD {r.gd_loss:.6g} ({r.gd}), SVD {r.svd_loss:.6g}"
        for r in summary.itertuples()
    )
    logger = get_run_logger()
    logger.info("Q1 factorisation at rank %d, loss ‖A − UVᵀ‖²_F: %s", params.rank, losses)
    for note in q1_notes(summary):
        logger.info(note)
    return FactorisationResult(
        summary,
        units,
        factorisation_sentence(list(matrices), params.rank, params.gd_lr, params.gd_epochs),
    )
