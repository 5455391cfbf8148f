"""Prefect tasks that hand results to tracking, in the MLflow layout of the design notes."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from matplotlib.figure import Figure
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from lab2core.factorise import Factorisation
from lab2core.mlp import CellResult, to_module
from lab2core.params import FactorisationSetup, MLPSetup
from lab2core.plots import plot_learning_curve
from lab2core.seeds import SeedComparison, group_label, group_mean_metrics
from tasks import tracking
from tasks.tracking import RunRecord

REGISTERED_MODEL = "lab2-mlp"


@task(cache_policy=NO_CACHE)
def log_gd_factorisation(
    parent_run_id: str,
    matrix: str,
    setup: FactorisationSetup,
    result: Factorisation,
    comparison: dict[str, float],
    figures: dict[str, Figure],
) -> str:
    """Child run `gd-factorise`: params, final loss, per-epoch loss history, angles to SVD's U, figures."""
    record = RunRecord(
        params={"matrix": matrix, **setup.as_params()},
        metrics={"loss": result.loss, **comparison},
        histories={"loss": result.loss_history},
        figures=figures,
    )
    return tracking.log_child_run(parent_run_id, "gd-factorise", f"gd-factorise {matrix}", record)


@task(cache_policy=NO_CACHE)
def log_svd_baseline(parent_run_id: str, matrix: str, rank: int, result: Factorisation) -> str:
    """Child run `svd-baseline`: matrix, rank and the optimal loss."""
    record = RunRecord(params={"matrix": matrix, "rank": rank}, metrics={"loss": result.loss})
    return tracking.log_child_run(parent_run_id, "svd-baseline", f"svd-baseline {matrix}", record)


@task(cache_policy=NO_CACHE, task_run_name="log-cells-{shard_index}")
def log_mlp_cells(
    parent_run_id: str, setup: MLPSetup, cells: Sequence[CellResult], cell_figures: bool, shard_index: int
) -> list[str]:
    """One child run `mlp` per cell: params, final metrics, training-loss history, learning curve."""
    return [tracking.log_child_run(parent_run_id, "mlp", _cell_name(c), _cell_record(setup, c, cell_figures)) for c in cells]


@task(cache_policy=NO_CACHE)
def log_parent_figures(parent_run_id: str, figures: dict[str, Figure]) -> None:
    """Figures on the pipeline's parent run."""
    tracking.log_to_run(parent_run_id, RunRecord(figures=figures))


@task(cache_policy=NO_CACHE)
def log_factorisation_summary(parent_run_id: str, summary: pd.DataFrame) -> None:
    """`{matrix}.gd_loss` and `{matrix}.svd_loss` on the parent run, and the table as factorisation.csv."""
    metrics = {f"{row.matrix}.{loss}": getattr(row, loss) for row in summary.itertuples() for loss in ("gd_loss", "svd_loss")}
    tracking.log_to_run(parent_run_id, RunRecord(metrics=metrics))
    tracking.log_text(parent_run_id, summary.to_csv(index=False), "factorisation.csv")


@task(cache_policy=NO_CACHE)
def log_grid_summary(
    parent_run_id: str, cells: pd.DataFrame, seeds: SeedComparison, figures: dict[str, Figure]
) -> None:
    """On the parent run: mlp_cells.csv, seed_summary.csv/.html, neighbour_overlaps.csv, group means, figures."""
    tracking.log_to_run(parent_run_id, RunRecord(metrics=group_mean_metrics(seeds.summary), figures=figures))
    tracking.log_text(parent_run_id, cells.to_csv(index=False), "mlp_cells.csv")
    tracking.log_text(parent_run_id, seeds.summary.to_csv(index=False), "seed_summary.csv")
    tracking.log_text(parent_run_id, seeds.html(), "seed_summary.html")
    tracking.log_text(parent_run_id, seeds.overlaps.to_csv(index=False), "neighbour_overlaps.csv")


@task(cache_policy=NO_CACHE)
def log_best_model(parent_run_id: str, cell: CellResult, input_example: torch.Tensor) -> str:
    """The winning group's model on the parent run (registered as lab2-mlp where the store allows); its URI."""
    tracking.log_to_run(parent_run_id, RunRecord(params={"best_lr": cell.lr, "best_iterations": cell.iterations, "best_seed": cell.seed}))
    return tracking.log_torch_model(parent_run_id, to_module(cell.weights), input_example, REGISTERED_MODEL).model_uri


@task(cache_policy=NO_CACHE)
def publish_seed_table(seeds: SeedComparison) -> None:
    """The seed table as a Prefect table artifact of the flow run (its `mlflow-run` artifact links the MLflow run)."""
    create_table_artifact(
        seeds.display().to_dict(orient="records"), key="seed-summary", description=f"MLP cells over seeds; best {seeds.best_label()}"
    )


def _cell_name(cell: CellResult) -> str:
    return f"mlp lr={cell.lr:g} it={cell.iterations} seed={cell.seed}"


def _cell_record(setup: MLPSetup, cell: CellResult, cell_figures: bool) -> RunRecord:
    params = {"lr": cell.lr, "iterations": cell.iterations, "seed": cell.seed, **setup.as_params()}
    return RunRecord(
        params=params,
        metrics={
            "train_accuracy": cell.train_accuracy,
            "val_accuracy": cell.val_accuracy,
            "train_loss": cell.train_loss,
            "val_loss": cell.val_loss,
            "diverged": float(cell.diverged),
        },
        histories={"train_loss": cell.train_loss_history},
        tags={"lab2.diverged": str(cell.diverged).lower(), "lab2.group": group_label(params)},
        figures={"learning_curve": plot_learning_curve(cell)} if cell_figures else {},
    )
