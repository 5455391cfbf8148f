"""Prefect tasks that hand results to tracking, in the MLflow layout of the design notes.

What a unit's run holds is decided here; which units run at all, in `lab2.tasks.units`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

import pandas as pd
import torch
from matplotlib.figure import Figure
from prefect import task
from prefect.artifacts import ProgressArtifact, TableArtifact
from prefect.cache_policies import NO_CACHE

from lab2.core.data import Dataset, labelled_frame
from lab2.core.describe import cell_description, cell_run_name, factorisation_description, factorisation_run_name, pipeline_description
from lab2.core.factorise import Factorisation
from lab2.core.identity import tensor_digest
from lab2.core.mlp import CellResult, MLPData, to_module, train_cells
from lab2.core.params import FactorisationSetup, MLPSetup
from lab2.core.plots import plot_learning_curve
from lab2.core.seeds import SeedComparison, group_label
from lab2.tasks import tracking
from lab2.tasks.tracking import FinishedRun, RunRecord, WinnerModel
from lab2.tasks.units import code_version, identity_of

if TYPE_CHECKING:
    from mlflow.data.pandas_dataset import PandasDataset


REGISTERED_MODEL = "lab2-mlp"
RUNS_VIEW = "lab2: the lab's columns"
RUNS_COLUMNS = (
    "params.`lr`", "params.`iterations`", "params.`seed`", "metrics.`val_accuracy`", "metrics.`train_accuracy`",
    "metrics.`val_loss`", "metrics.`train_loss`", "tags.`lab2.group`",
)


@task(cache_policy=NO_CACHE)
def log_gd_factorisation(
    parent_run_id: str,
    matrix: str,
    setup: FactorisationSetup,
    result: Factorisation,
    comparison: dict[str, float],
    figures: dict[str, Figure],
    matrix_data: PandasDataset,
    identity: str | None = None,
) -> str:
    """Child run `gd-factorise`: params, final loss, per-epoch loss history, angles to SVD's U, figures."""
    record = RunRecord(
        params=gd_params(matrix, setup),
        metrics={"loss": result.loss, **comparison},
        histories={"loss": result.loss_history},
        tags={**_code_tag(), tracking.DESCRIPTION_TAG: factorisation_description("gd-factorise", matrix, setup.rank, result.loss)},
        figures=figures,
        datasets={"training": matrix_data},
    )
    return tracking.log_child_run(parent_run_id, "gd-factorise", factorisation_run_name("gd-factorise", matrix), record, identity)


@task(cache_policy=NO_CACHE)
def log_svd_baseline(
    parent_run_id: str, matrix: str, rank: int, result: Factorisation, matrix_data: PandasDataset, identity: str | None = None
) -> str:
    """Child run `svd-baseline`: matrix, rank and the optimal loss."""
    description = factorisation_description("svd-baseline", matrix, rank, result.loss)
    record = RunRecord(
        params=svd_params(matrix, rank), metrics={"loss": result.loss}, tags={**_code_tag(), tracking.DESCRIPTION_TAG: description},
        datasets={"training": matrix_data},
    )
    return tracking.log_child_run(parent_run_id, "svd-baseline", factorisation_run_name("svd-baseline", matrix), record, identity)


@task(cache_policy=NO_CACHE, task_run_name="log-cells-{batch}")
def log_mlp_cells(
    parent_run_id: str,
    setup: MLPSetup,
    cells: Sequence[CellResult],
    cell_figures: bool,
    batch: int,
    identities: Mapping[tuple[float, int, int], str] | None = None,
    datasets: Mapping[str, PandasDataset] | None = None,
) -> list[str]:
    """One child run `mlp` per cell: params, final metrics, training-loss history, learning curve, its data."""
    identities = identities or {}
    return [
        tracking.log_child_run(
            parent_run_id, "mlp", _cell_name(c, setup.split_seed), _cell_record(setup, c, cell_figures, datasets or {}), identities.get(cell_key(c))
        )
        for c in cells
    ]


@task(cache_policy=NO_CACHE)
def copy_parent_figure(parent_run_id: str, source_run_id: str, name: str) -> None:
    """A reused run's figure, copied onto the new parent run."""
    tracking.copy_artifact(source_run_id, f"figures/{name}.png", parent_run_id)


def gd_params(matrix: str, setup: FactorisationSetup) -> dict[str, object]:
    """Params of a `gd-factorise` run."""
    return {"matrix": matrix, **setup.as_params()}


def svd_params(matrix: str, rank: int) -> dict[str, object]:
    """Params of an `svd-baseline` run."""
    return {"matrix": matrix, "rank": rank}


def cell_params(setup: MLPSetup, lr: float, iterations: int, seed: int) -> dict[str, object]:
    """Params of an `mlp` run."""
    return {"lr": lr, "iterations": iterations, "seed": seed, **setup.as_params()}


def cell_identities(
    setup: MLPSetup, lrs: Sequence[float], iterations: Sequence[int], seeds: Sequence[int], cell_figures: bool, data_digest: str
) -> dict[tuple[float, int, int], str]:
    """The identity of every (lr, iterations, seed) cell; whether it has a figure is part of it."""
    return {
        (lr, it, seed): identity_of("mlp", {**cell_params(setup, lr, it, seed), "cell_figures": cell_figures}, data_digest)
        for lr in lrs
        for it in iterations
        for seed in seeds
    }


def cell_key(cell: CellResult) -> tuple[float, int, int]:
    """A cell's (lr, iterations, seed)."""
    return (cell.lr, cell.iterations, cell.seed)


def reused_cell_rows(found: Mapping[tuple[float, int, int], FinishedRun]) -> list[dict[str, object]]:
    """Rows of the grid's table read from reused runs' final metrics."""
    return [
        {"lr": lr, "iterations": it, "seed": seed, **{k: run.metrics[k] for k in _CELL_METRICS}, "diverged": run.tags.get("lab2.diverged") == "true"}
        for (lr, it, seed), run in found.items()
    ]


def reused_factorisation_row(matrix: str, found: Mapping[str, FinishedRun]) -> dict[str, object]:
    """A row of Q1's summary read from the reused `gd-factorise` and `svd-baseline` runs."""
    gd, svd = found["gd-factorise"].metrics, found["svd-baseline"].metrics
    angles = {k: gd[k] for k in sorted(gd) if k.startswith(("principal_angle_", "u_column_angle_"))}
    return {"matrix": matrix, "gd_loss": gd["loss"], "svd_loss": svd["loss"], **angles}


def _code_tag() -> dict[str, str]:
    return {"lab2.code_version": code_version()}


@task(cache_policy=NO_CACHE)
def log_parent_figures(parent_run_id: str, figures: dict[str, Figure]) -> None:
    """Figures on the pipeline's parent run."""
    tracking.log_to_run(parent_run_id, RunRecord(figures=figures))


@task(cache_policy=NO_CACHE)
def log_factorisation_summary(parent_run_id: str, summary: pd.DataFrame) -> None:
    """Q1's table as factorisation.csv on the parent run (each loss is also the `loss` of its own child run; as
    metrics on the parent they would be the chart view's first, one-bar charts)."""
    tracking.log_text(parent_run_id, summary.to_csv(index=False), "factorisation.csv")


@task(cache_policy=NO_CACHE)
def log_grid_summary(
    parent_run_id: str, cells: pd.DataFrame, seeds: SeedComparison, figures: dict[str, Figure], val_rows: int
) -> None:
    """On the parent run: mlp_cells.csv, seed_summary.csv/.html, seed_pairs.csv, figures and val_rows (no per-group
    metrics: MLflow's group-by on lab2.group averages the seeds itself)."""
    tracking.log_to_run(parent_run_id, RunRecord(params={"val_rows": val_rows}, figures=figures))
    tracking.log_text(parent_run_id, cells.to_csv(index=False), "mlp_cells.csv")
    tracking.log_text(parent_run_id, seeds.summary.to_csv(index=False), "seed_summary.csv")
    tracking.log_text(parent_run_id, seeds.html(), "seed_summary.html")
    tracking.log_text(parent_run_id, seeds.pairs.to_csv(index=False), "seed_pairs.csv")


@dataclass(frozen=True)
class BestCell:
    """The cell whose model lab2 publishes: the best group's smallest seed on the smallest split seed."""

    lr: float
    iterations: int
    seed: int
    split_seed: int
    val_accuracy: float
    run_id: str  # the cell's run, computed now or reused
    identity: str


@task(cache_policy=NO_CACHE)
def log_best_model(
    parent_run_id: str, best: BestCell, data: MLPData, setup: MLPSetup, seeds: SeedComparison, datasets: Mapping[str, PandasDataset]
) -> str:
    """The winning cell's model as logged model lab2-mlp of the parent run, with the cell's metrics: the one an
    earlier run logged for the same cell and group, else trained again (deterministic, so identical to its
    cell's) and logged; a registry version only for a new winning unit. Returns the model's URI."""
    group_stats = seeds.best
    tracking.log_to_run(
        parent_run_id, RunRecord(params={"best_lr": best.lr, "best_iterations": best.iterations, "best_seed": best.seed, "best_split_seed": best.split_seed})
    )
    group = f"val accuracy {group_stats['val_accuracy_mean']:.3f} ± {group_stats['val_accuracy_std']:.3f} over {int(group_stats['val_accuracy_n'])} seeds"
    params = cell_params(setup, best.lr, best.iterations, best.seed)
    tags = {
        "lr": f"{best.lr:g}", "iterations": best.iterations, "seed": best.seed,
        "lab2.cell": cell_name(best.lr, best.iterations, best.seed, best.split_seed), "lab2.group": group_label(params),
        "lab2.group_val_accuracy": group, "lab2.cell_run_id": best.run_id,
    }
    description = (
        f"lab2's MLP, the grid's best group lr={best.lr:g}, {best.iterations} iterations ({group}); "
        f"this is its seed-{best.seed} model, validation accuracy {best.val_accuracy:.1%}. Input: the scaled features; output: logits."
    )

    def train() -> torch.nn.Module:
        (cell,) = train_cells(data, [(best.lr, best.seed)], [best.iterations], setup.hidden, setup.protocol)
        return to_module(cell.weights)

    winner = WinnerModel(
        train, data.x_val[:5], best.run_id, best.identity, params, tags, description, {"train": datasets["training"], "val": datasets["validation"]},
    )
    uri, _ = tracking.log_winner_model(parent_run_id, REGISTERED_MODEL, winner)
    return uri


@task(cache_policy=NO_CACHE)
def mlp_datasets(data: Dataset, mlp_data: MLPData) -> dict[str, PandasDataset]:
    """The MLP's training and validation parts as MLflow datasets (scaled features, label), hashed by content."""
    columns = data.columns()
    parts = {"training": (mlp_data.x_train, mlp_data.y_train), "validation": (mlp_data.x_val, mlp_data.y_val)}
    return {
        context: tracking.dataset(labelled_frame(x, columns, y, data.class_names), data.name, _split_digest(x, y), data.source, "label")
        for context, (x, y) in parts.items()
    }


def matrix_dataset(name: str, matrix: torch.Tensor, data: Dataset) -> PandasDataset:
    """A matrix Q1 factorises as an MLflow dataset: the dataset's centred features, or the lab's 3×3."""
    if name == data.name:
        frame = labelled_frame(matrix, data.columns(), data.labels, data.class_names)
        return tracking.dataset(frame, name, data.digest, data.source, "label")
    frame = labelled_frame(matrix, [f"c{k}" for k in range(matrix.shape[1])])
    return tracking.dataset(frame, name, tensor_digest(matrix), "lab2.core.data.LAB_MATRIX", None)


def _split_digest(x: torch.Tensor, y: torch.Tensor) -> str:
    return tensor_digest(torch.cat([x.double(), y.double().unsqueeze(1)], dim=1))


@task(cache_policy=NO_CACHE)
def read_reused_curves(
    reused: Mapping[tuple[float, int, int], FinishedRun], trained: Collection[tuple[float, int]]
) -> pd.DataFrame:
    """Training-loss curves (lr, seed, step, loss) of reused trajectories not trained again: each one's longest cell."""
    longest: dict[tuple[float, int], tuple[int, str]] = {}
    for (lr, iterations, seed), run in reused.items():
        if (lr, seed) not in trained and iterations > longest.get((lr, seed), (0, ""))[0]:
            longest[(lr, seed)] = (iterations, run.run_id)
    rows = [
        {"lr": lr, "seed": seed, "step": step, "loss": loss}
        for (lr, seed), (iterations, run_id) in longest.items()
        for step, loss in tracking.metric_history(run_id, "train_loss")
        if step < iterations  # the last point is the final loss, logged after the curve
    ]
    return pd.DataFrame(rows, columns=["lr", "seed", "step", "loss"])


@task(cache_policy=NO_CACHE)
def publish_seed_table(seeds: SeedComparison) -> None:
    """The seed table and the paired verdicts as Prefect table artifacts of the flow run a user opens: the top one
    (its `mlflow-run` artifact links the MLflow run)."""
    TableArtifact(
        key="seed-summary", table=seeds.display().to_dict(orient="records"),
        description=f"MLP cells over seeds; best {seeds.best_label()}", flow_run_id=top_flow_run_id(),
    ).create()
    pairs = seeds.pairs[["a", "b", "n", "mean_diff", "ci_low", "ci_high", "p_t", "p_holm", "p_signflip", "prob_improvement", "seeds_needed", "verdict"]]
    TableArtifact(
        key="seed-pairs", table=pairs.astype(object).where(pairs.notna(), None).to_dict(orient="records"),
        description="Groups compared seed by seed (A − B of val accuracy): paired t, Holm, exact sign-flip, seeds for 80% power",
        flow_run_id=top_flow_run_id(),
    ).create()

def create_progress(description: str) -> UUID:
    """A progress artifact (0 %) on the top flow run; update it with prefect's update_progress_artifact."""
    return ProgressArtifact(key="mlp-grid-progress", progress=0.0, description=description, flow_run_id=top_flow_run_id()).create().id


def top_flow_run_id() -> UUID | None:
    """The flow run a user opens: the top of the current flow run's tree (itself when it runs alone)."""
    from prefect.runtime import flow_run

    root = flow_run.root_flow_run_id
    return UUID(str(root)) if root else None


@task(cache_policy=NO_CACHE)
def describe_pipeline(
    parent_run_id: str, what_ran: Sequence[str], seeds: SeedComparison | None, factorisation: pd.DataFrame | None, units: pd.DataFrame
) -> str:
    """The parent run's description: what ran, the grid's table, the best group, its Prefect flow run, reused runs."""
    exp_id = tracking.experiment_of(parent_run_id)  # every unit's run is in the parent's experiment
    links = {
        row.name if row.step == "mlp" else factorisation_run_name(row.step, row.name): (tracking.run_link(row.run_id, exp_id), row.reused)
        for row in units.itertuples()
    }
    reused = [(name, link) for name, (link, was_reused) in links.items() if was_reused]
    parent = tracking.run_data(parent_run_id)
    best_run = None
    if seeds is not None:
        name = cell_name(
            float(parent.params["best_lr"]), int(parent.params["best_iterations"]), int(parent.params["best_seed"]),
            int(parent.params.get("best_split_seed", 0)),
        )
        best_run = (name, links[name][0])
    tracking.set_runs_view(tracking.experiment_name_of(parent_run_id), RUNS_VIEW, RUNS_COLUMNS)
    text = pipeline_description(what_ran, seeds, factorisation, parent.tags.get("prefect.flow_run_url"), reused, best_run)
    tracking.set_description(parent_run_id, text)
    return text


def runs_view_key() -> str:
    """The key of lab2's saved view of the runs table, for links."""
    return tracking.view_key(RUNS_COLUMNS)


_CELL_METRICS = ("train_accuracy", "val_accuracy", "train_loss", "val_loss")


def cell_name(lr: float, iterations: int, seed: int, split_seed: int = 0) -> str:
    """The run name of a cell."""
    return cell_run_name(lr, iterations, seed, split_seed)


def _cell_name(cell: CellResult, split_seed: int) -> str:
    return cell_name(*cell_key(cell), split_seed)


def _cell_record(setup: MLPSetup, cell: CellResult, cell_figures: bool, datasets: Mapping[str, PandasDataset]) -> RunRecord:
    params = cell_params(setup, cell.lr, cell.iterations, cell.seed)
    description = cell_description(cell.lr, cell.iterations, cell.seed, cell.val_accuracy, cell.train_accuracy, cell.diverged)
    return RunRecord(
        # log10_lr: MLflow's parallel coordinates have no log axis, so the lr is also given as its exponent.
        params={**params, "log10_lr": f"{math.log10(cell.lr):.4g}"},
        metrics={
            "train_accuracy": cell.train_accuracy,
            "val_accuracy": cell.val_accuracy,
            "train_loss": cell.train_loss,
            "val_loss": cell.val_loss,
        },
        histories={"train_loss": cell.train_loss_history},
        tags={
            "lab2.diverged": str(cell.diverged).lower(), "lab2.group": group_label(params), **_code_tag(),
            tracking.DESCRIPTION_TAG: description,
        },
        figures={"learning_curve": plot_learning_curve(cell)} if cell_figures else {},
        datasets=datasets,
        figure_folder="",  # compare the seeds of a cell: MLflow's compare page lists root files only
    )
