"""Child runs: what each unit's run records (params, metrics, histories, figures, datasets, tags)
and the tasks that write them, in the MLflow layout of the design notes. Which units run at all
is `lab2.tasks.resume`'s."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from prefect import task

from lab2.core.data import Dataset, labelled_frame
from lab2.core.describe import (
    cell_description,
    cell_run_name,
    factorisation_description,
    factorisation_run_name,
    gd_note,
)
from lab2.core.factorise import Factorisation, q1_row, reconstruction_rows, u_rows
from lab2.core.identity import code_version, tensor_digest
from lab2.core.mlp import CellResult, MLPData
from lab2.core.params import FactorisationSetup, MLPSetup
from lab2.core.seeds import group_label
from lab2.tasks import tracking
from lab2.tasks.figures import learning_curve_png
from lab2.tasks.layout import (
    CODE_VERSION_TAG,
    DESCRIPTION_TAG,
    DIVERGED_TAG,
    GD_OUTCOME_TAG,
    GD_STEP,
    GROUP_TAG,
    IDENTITY_TAG,
    MLP_STEP,
    RECONSTRUCTION_CSV,
    SVD_STEP,
    U_ROWS_CSV,
    VAL_CORRECT_TAG,
)
from lab2.tasks.stopping import check_stop
from lab2.tasks.tracking import RunRecord

if TYPE_CHECKING:
    from mlflow.data.pandas_dataset import PandasDataset

    from lab2.tasks.resume import Plan

CellKey = tuple[float, int, int, int]  # lr, iterations, seed, split seed


# the step a `gd-factorise` run took: its gd_lr, or for "auto" the matrix's stable step
GD_LR_USED = "gd_lr_used"


def gd_params(matrix: str, setup: FactorisationSetup) -> dict[str, object]:
    """Params of a `gd-factorise` run that make its identity, named as the flow's parameters (an
    `lr` column is the MLP's)."""
    return {
        "matrix": matrix,
        "rank": setup.rank,
        "gd_lr": setup.lr,
        "gd_epochs": setup.epochs,
        "gd_seed": setup.seed,
    }


def factorisation_group(step: str, matrix: str) -> str:
    """A factorisation run's `lab2.group`: a group of its own ("Q1 gd iris"), so that MLflow never
    averages two matrices' metrics, and Q1's groups sort before the grid's."""
    return f"Q1 {factorisation_run_name(step, matrix)}"


def svd_params(matrix: str, rank: int) -> dict[str, object]:
    """Params of an `svd-baseline` run."""
    return {"matrix": matrix, "rank": rank}


def cell_params(
    setup: MLPSetup, lr: float, iterations: int, seed: int
) -> dict[str, float | int | str]:
    """Params of an `mlp` run."""
    return {"lr": lr, "iterations": iterations, "seed": seed, **setup.as_params()}


def _unit_tags(identity: str, description: str) -> dict[str, str]:
    return {
        IDENTITY_TAG: identity,
        CODE_VERSION_TAG: code_version(),
        DESCRIPTION_TAG: description,
    }


def gd_record(
    setup: FactorisationSetup,
    gd: Factorisation,
    row: Mapping[str, Any],
    angles: dict[str, float],
    figures: dict[str, bytes],
    dataset: PandasDataset,
    identity: str,
    texts: Mapping[str, str],
) -> RunRecord:
    """A `gd-factorise` run: params and the step taken, final loss and gap to the optimum (NaN once
    diverged), per-epoch loss history (its finite part), angles to SVD's U, its outcome, figures
    and U's rows (`texts`), its matrix; `row` is its row of Q1's table."""
    matrix = row["matrix"]
    description = factorisation_description(GD_STEP, matrix, setup.rank, gd.loss)
    note = gd_note(row)
    return RunRecord(
        params={**gd_params(matrix, setup), GD_LR_USED: gd.lr},
        metrics={
            "loss": gd.loss if not gd.diverged else math.nan,
            "optimum_gap": row["optimum_gap"],
            **angles,
        },
        histories={"loss": {k: x for k, x in enumerate(gd.loss_history) if math.isfinite(x)}},
        tags={
            **_unit_tags(identity, f"{description}\n\n{note}." if note else description),
            GROUP_TAG: factorisation_group(GD_STEP, matrix),
            DIVERGED_TAG: str(gd.diverged).lower(),
            GD_OUTCOME_TAG: row["gd"],
        },
        figures=figures,
        datasets={"training": dataset},
        texts=texts,
    )


def svd_record(
    matrix: str, rank: int, svd: Factorisation, dataset: PandasDataset, identity: str
) -> RunRecord:
    """An `svd-baseline` run: matrix, rank, the optimal loss, its matrix."""
    tags = {
        **_unit_tags(identity, factorisation_description(SVD_STEP, matrix, rank, svd.loss)),
        GROUP_TAG: factorisation_group(SVD_STEP, matrix),
    }
    return RunRecord(
        params=svd_params(matrix, rank),
        metrics={"loss": svd.loss},
        tags=tags,
        datasets={"training": dataset},
    )


def cell_record(
    setup: MLPSetup,
    cell: CellResult,
    learning_curve: bytes | None,
    datasets: Mapping[str, PandasDataset],
    identity: str,
) -> RunRecord:
    """An `mlp` run: params, final accuracies and losses, the training-loss history, its learning
    curve (PNG), its data."""
    params = cell_params(setup, cell.lr, cell.iterations, cell.seed)
    description = cell_description(
        cell.lr, cell.iterations, cell.seed, cell.val_accuracy, cell.train_accuracy, cell.diverged
    )
    return RunRecord(
        # log10_lr: MLflow's parallel coordinates have no log axis, so the lr is also given as its
        # exponent.
        params={**params, "log10_lr": f"{math.log10(cell.lr):.4g}"},
        metrics={
            m: getattr(cell, m)
            for m in ("train_accuracy", "val_accuracy", "train_loss", "val_loss")
        },
        histories={"train_loss": cell.train_loss_history},
        tags={
            DIVERGED_TAG: str(cell.diverged).lower(),
            GROUP_TAG: group_label(params),
            VAL_CORRECT_TAG: cell.val_correct,
            **_unit_tags(identity, description),
        },
        figures={"learning_curve": learning_curve} if learning_curve else {},
        datasets=datasets,
        # compare the seeds of a cell: MLflow's compare page lists root files only
        figure_folder="",
    )


def mlp_datasets(data: Dataset, mlp_data: MLPData) -> dict[str, PandasDataset]:
    """The MLP's training and validation parts as MLflow datasets (scaled features, label), hashed
    by content."""
    parts = {
        "training": (mlp_data.x_train, mlp_data.y_train),
        "validation": (mlp_data.x_val, mlp_data.y_val),
    }
    return {
        context: tracking.dataset(
            labelled_frame(x, data.columns(), y, data.class_names),
            data.name,
            tensor_digest(torch.cat([x.double(), y.double().unsqueeze(1)], dim=1)),
            data.source,
            "label",
        )
        for context, (x, y) in parts.items()
    }


def matrix_dataset(name: str, matrix: torch.Tensor, data: Dataset) -> PandasDataset:
    """A matrix Q1 factorises as an MLflow dataset: the dataset's centred features, or the lab's
    3×3."""
    if name == data.name:
        return tracking.dataset(
            labelled_frame(matrix, data.columns(), data.labels, data.class_names),
            name,
            data.digest,
            data.source,
            "label",
        )
    frame = labelled_frame(matrix, [f"c{k}" for k in range(matrix.shape[1])])
    return tracking.dataset(frame, name, tensor_digest(matrix), "lab2.core.data.LAB_MATRIX", None)


@task
def record_factorisation(
    parent_run_id: str,
    name: str,
    matrix: torch.Tensor,
    data: Dataset,
    setup: FactorisationSetup,
    plan: Plan,
    gd: Factorisation,
    svd: Factorisation,
    angles: dict[str, float],
    figures: dict[str, bytes],
) -> tuple[dict[str, object], dict[tuple[str, str], str]]:
    """Q1 of one matrix: its `gd-factorise` and `svd-baseline` runs (those not reused); on the GD
    run and the parent, the dataset's U figure and U rows (u.csv), or the lab's matrix
    reconstructed (reconstruction.csv); returns its row of Q1's table and the runs written."""
    dataset = matrix_dataset(name, matrix, data)
    if name == data.name:
        texts = {U_ROWS_CSV: u_rows(svd.u, gd.u, data.labels, data.class_names).to_csv(index=False)}
    else:
        texts = {RECONSTRUCTION_CSV: reconstruction_rows(matrix, gd, svd).to_csv(index=False)}
    row = q1_row(name, matrix, gd.lr, gd.loss, svd.loss, angles)
    records = {
        (name, GD_STEP): lambda: gd_record(
            setup, gd, row, angles, figures, dataset, plan.identities[(name, GD_STEP)], texts
        ),
        (name, SVD_STEP): lambda: svd_record(
            name, setup.rank, svd, dataset, plan.identities[(name, SVD_STEP)]
        ),
    }
    written = {
        key: tracking.log_child_run(parent_run_id, key[1], plan.names[key], records[key]())
        for key in plan.to_compute
        if key in records
    }
    tracking.log_to_run(parent_run_id, RunRecord(figures=figures, texts=texts))
    return row, written


@task(task_run_name="log-cells-{batch}")
def log_cells(
    parent_run_id: str,
    setups: Mapping[int, MLPSetup],
    cells: Sequence[tuple[int, CellResult]],
    cell_figures: bool,
    batch: int,
    identities: Mapping[CellKey, str],
    datasets: Mapping[int, Mapping[str, PandasDataset]],
    stop_file: str,
) -> dict[CellKey, str]:
    """One child run `mlp` per (split seed, cell): params, final metrics, training-loss history,
    learning curve, its data. Between cells, stops (raises Stopped) once `stop_file` exists:
    every run written so far is whole."""
    # drawn as the runs before them are written
    curves = [learning_curve_png(c) if cell_figures else None for _, c in cells]
    written = {}
    for (split, c), curve in zip(cells, curves, strict=True):
        check_stop(stop_file)
        key = (c.lr, c.iterations, c.seed, split)
        record = cell_record(
            setups[split], c, curve.result() if curve else None, datasets[split], identities[key]
        )
        written[key] = tracking.log_child_run(parent_run_id, MLP_STEP, cell_run_name(*key), record)
    return written
