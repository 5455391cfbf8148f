"""Prefect tasks that hand results to tracking, in the MLflow layout of the design notes.

Each unit of work (a factorisation, an SVD baseline, an MLP cell) has an identity: a hash of its
logged params, the digest of its input data and the code version (a hash of the sources that compute
and record results: lab2core/*.py, tasks/compute.py, tasks/record.py). It is the run's tag lab2.identity.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import pandas as pd
import torch
from matplotlib.figure import Figure
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from lab2core.factorise import Factorisation
from lab2core.identity import source_digest, unit_identity
from lab2core.mlp import CellResult, to_module
from lab2core.params import FactorisationSetup, MLPSetup
from lab2core.plots import plot_learning_curve
from lab2core.seeds import SeedComparison, group_label, group_mean_metrics
from tasks import tracking
from tasks.tracking import FinishedRun, RunRecord

K = TypeVar("K", bound=Hashable)
_ROOT = Path(__file__).resolve().parent.parent

REGISTERED_MODEL = "lab2-mlp"


@task(cache_policy=NO_CACHE)
def log_gd_factorisation(
    parent_run_id: str,
    matrix: str,
    setup: FactorisationSetup,
    result: Factorisation,
    comparison: dict[str, float],
    figures: dict[str, Figure],
    identity: str | None = None,
) -> str:
    """Child run `gd-factorise`: params, final loss, per-epoch loss history, angles to SVD's U, figures."""
    record = RunRecord(
        params=gd_params(matrix, setup),
        metrics={"loss": result.loss, **comparison},
        histories={"loss": result.loss_history},
        tags=_code_tag(),
        figures=figures,
    )
    return tracking.log_child_run(parent_run_id, "gd-factorise", f"gd-factorise {matrix}", record, identity)


@task(cache_policy=NO_CACHE)
def log_svd_baseline(parent_run_id: str, matrix: str, rank: int, result: Factorisation, identity: str | None = None) -> str:
    """Child run `svd-baseline`: matrix, rank and the optimal loss."""
    record = RunRecord(params=svd_params(matrix, rank), metrics={"loss": result.loss}, tags=_code_tag())
    return tracking.log_child_run(parent_run_id, "svd-baseline", f"svd-baseline {matrix}", record, identity)


@task(cache_policy=NO_CACHE, task_run_name="log-cells-{batch}")
def log_mlp_cells(
    parent_run_id: str,
    setup: MLPSetup,
    cells: Sequence[CellResult],
    cell_figures: bool,
    batch: int,
    identities: Mapping[tuple[float, int, int], str] | None = None,
) -> list[str]:
    """One child run `mlp` per cell: params, final metrics, training-loss history, learning curve."""
    identities = identities or {}
    return [
        tracking.log_child_run(
            parent_run_id, "mlp", _cell_name(c, setup.split_seed), _cell_record(setup, c, cell_figures), identities.get(cell_key(c))
        )
        for c in cells
    ]


@task(cache_policy=NO_CACHE)
def find_finished(experiment: str, identities: Mapping[K, str]) -> dict[K, FinishedRun]:
    """The FINISHED run of each unit that has one, by the unit's key."""
    found = tracking.finished_units(experiment, identities.values())
    return {key: found[identity] for key, identity in identities.items() if identity in found}


@task(cache_policy=NO_CACHE)
def copy_parent_figure(parent_run_id: str, source_run_id: str, name: str) -> None:
    """A reused run's figure, copied onto the new parent run."""
    tracking.copy_artifact(source_run_id, f"figures/{name}.png", parent_run_id)


@task(cache_policy=NO_CACHE)
def log_units(parent_run_id: str, flow_name: str, units: pd.DataFrame) -> None:
    """Every unit of a flow with its run and whether it was reused (`{flow}.units_reused`/`_computed`, units/{flow}.csv);
    then each identity is left on one FINISHED run only."""
    reused = int(units["reused"].sum()) if len(units) else 0
    metrics = {f"{flow_name}.units_reused": reused, f"{flow_name}.units_computed": len(units) - reused}
    tracking.log_to_run(parent_run_id, RunRecord(metrics=metrics))
    tracking.log_text(parent_run_id, units.to_csv(index=False), f"units/{flow_name}.csv")
    tracking.settle_identities(parent_run_id, units["identity"].tolist())


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the sources that compute and record results."""
    files = [*(_ROOT / "lab2core").glob("*.py"), _ROOT / "tasks" / "compute.py", _ROOT / "tasks" / "record.py"]
    return source_digest(files, _ROOT)


def gd_params(matrix: str, setup: FactorisationSetup) -> dict[str, object]:
    """Params of a `gd-factorise` run."""
    return {"matrix": matrix, **setup.as_params()}


def svd_params(matrix: str, rank: int) -> dict[str, object]:
    """Params of an `svd-baseline` run."""
    return {"matrix": matrix, "rank": rank}


def cell_params(setup: MLPSetup, lr: float, iterations: int, seed: int) -> dict[str, object]:
    """Params of an `mlp` run."""
    return {"lr": lr, "iterations": iterations, "seed": seed, **setup.as_params()}


def identity_of(step: str, params: Mapping[str, object], data_digest: str) -> str:
    """The identity of a unit of `step` with these params on data of this digest, at this code version."""
    return unit_identity(step, params, data_digest, code_version())


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
        {"lr": lr, "iterations": it, "seed": seed, **{k: run.metrics[k] for k in _CELL_METRICS}, "diverged": run.metrics["diverged"] == 1.0}
        for (lr, it, seed), run in found.items()
    ]


def reused_factorisation_row(matrix: str, found: Mapping[str, FinishedRun]) -> dict[str, object]:
    """A row of Q1's summary read from the reused `gd-factorise` and `svd-baseline` runs."""
    gd, svd = found["gd-factorise"].metrics, found["svd-baseline"].metrics
    angles = {k: gd[k] for k in sorted(gd) if k.startswith(("principal_angle_", "u_column_angle_"))}
    return {"matrix": matrix, "gd_loss": gd["loss"], "svd_loss": svd["loss"], **angles}


def units_table(
    steps: Mapping[K, str], names: Mapping[K, str], identities: Mapping[K, str], run_ids: Mapping[K, str], reused: Collection[K]
) -> pd.DataFrame:
    """One row per unit: step, name, identity, run id, reused or not."""
    return pd.DataFrame(
        [{"step": steps[k], "name": names[k], "identity": identities[k], "run_id": run_ids[k], "reused": k in reused} for k in identities],
        columns=["step", "name", "identity", "run_id", "reused"],
    )


def _code_tag() -> dict[str, str]:
    return {"lab2.code_version": code_version()}


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
    parent_run_id: str, cells: pd.DataFrame, seeds: SeedComparison, figures: dict[str, Figure], val_rows: int
) -> None:
    """On the parent run: mlp_cells.csv, seed_summary.csv/.html, seed_pairs.csv, group means, figures, val_rows."""
    record = RunRecord(params={"val_rows": val_rows}, metrics=group_mean_metrics(seeds.summary), figures=figures)
    tracking.log_to_run(parent_run_id, record)
    tracking.log_text(parent_run_id, cells.to_csv(index=False), "mlp_cells.csv")
    tracking.log_text(parent_run_id, seeds.summary.to_csv(index=False), "seed_summary.csv")
    tracking.log_text(parent_run_id, seeds.html(), "seed_summary.html")
    tracking.log_text(parent_run_id, seeds.pairs.to_csv(index=False), "seed_pairs.csv")


@task(cache_policy=NO_CACHE)
def log_best_model(parent_run_id: str, cell: CellResult, input_example: torch.Tensor, split_seed: int = 0) -> str:
    """The winning group's model on the parent run (registered as lab2-mlp where the store allows); its URI."""
    params = {"best_lr": cell.lr, "best_iterations": cell.iterations, "best_seed": cell.seed, "best_split_seed": split_seed}
    tracking.log_to_run(parent_run_id, RunRecord(params=params))
    return tracking.log_torch_model(parent_run_id, to_module(cell.weights), input_example, REGISTERED_MODEL).model_uri


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
    """The seed table and the paired verdicts as Prefect table artifacts of the flow run (its `mlflow-run`
    artifact links the MLflow run)."""
    create_table_artifact(
        seeds.display().to_dict(orient="records"), key="seed-summary", description=f"MLP cells over seeds; best {seeds.best_label()}"
    )
    shown = ["a", "b", "n", "mean_diff", "ci_low", "ci_high", "p_t", "p_holm", "p_signflip", "prob_improvement", "seeds_needed", "verdict"]
    pairs = seeds.pairs[shown]
    create_table_artifact(
        pairs.astype(object).where(pairs.notna(), None).to_dict(orient="records"), key="seed-pairs",
        description="Groups compared seed by seed (A − B of val accuracy): paired t, Holm, exact sign-flip, seeds for 80% power",
    )


_CELL_METRICS = ("train_accuracy", "val_accuracy", "train_loss", "val_loss")


def cell_name(lr: float, iterations: int, seed: int, split_seed: int = 0) -> str:
    """The run name of a cell (its split seed named when it is not the default 0)."""
    return f"mlp lr={lr:g} it={iterations} seed={seed}" + (f" split={split_seed}" if split_seed else "")


def _cell_name(cell: CellResult, split_seed: int) -> str:
    return cell_name(*cell_key(cell), split_seed)


def _cell_record(setup: MLPSetup, cell: CellResult, cell_figures: bool) -> RunRecord:
    params = cell_params(setup, cell.lr, cell.iterations, cell.seed)
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
        tags={"lab2.diverged": str(cell.diverged).lower(), "lab2.group": group_label(params), **_code_tag()},
        figures={"learning_curve": plot_learning_curve(cell)} if cell_figures else {},
    )
