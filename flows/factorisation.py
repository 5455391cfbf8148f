"""Q1: factorise the lab's 3x3 matrix and the centred dataset at rank r; compare with truncated SVD; plot U."""

from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger

from lab2core.params import Count, DatasetName, ExperimentName, FactorisationSetup, LearningRate, Rank, Seed
from tasks import tracking
from tasks.compute import compare_u, gd_factorise, load_matrices, plot_u, svd_baseline
from tasks.record import log_factorisation_summary, log_gd_factorisation, log_parent_figures, log_svd_baseline
from tasks.tracking import RunRecord


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
) -> pd.DataFrame:
    """Q1_1–Q1_3: rank-r factorisation by GD with autograd against the truncated-SVD optimum; U of both."""
    setup = FactorisationSetup(rank, lr, epochs, seed)
    data, matrices = load_matrices(dataset, label_column, rank)
    parent_record = RunRecord(params={"dataset": dataset, **setup.as_params()})
    rows = []
    with tracking.pipeline_run(experiment, "factorisation", parent_record, attach_to=parent_run_id) as parent:
        for name, matrix in matrices.items():
            gd = gd_factorise(matrix, setup)
            svd = svd_baseline(matrix, rank)
            comparison = compare_u(gd, svd)
            figures = {"u_scatter": plot_u(svd, gd, data)} if name == data.name else {}
            log_gd_factorisation(parent, name, setup, gd, comparison, figures)
            log_svd_baseline(parent, name, rank, svd)
            log_parent_figures(parent, figures)
            rows.append({"matrix": name, "gd_loss": gd.loss, "svd_loss": svd.loss, **comparison})
        summary = pd.DataFrame(rows)
        log_factorisation_summary(parent, summary)
    get_run_logger().info("Q1 factorisation at rank %d:\n%s", rank, summary.to_string(index=False))
    return summary
