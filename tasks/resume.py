"""Resume, in one place: each unit's identity, the plan (reuse or compute), reading reused results
back, and settling identities and stale runs when a pipeline closes.

A unit is one GD factorisation, one SVD baseline or one MLP cell, written as one child run that
carries its identity (tag lab2.identity): a hash of its step, logged params, input-data digest
and the code version of its recipe (`lab2.core.identity.RECIPE`). A flow scans the experiment
once to plan: a FINISHED run of an identity is reused, the rest is computed. The flow that opened
the parent run scans once more as it closes: runs left RUNNING by a process that is gone are
marked KILLED, and each identity stays on its newest FINISHED run (older ones, from `force` or
from a process that computed the same unit at the same time, get lab2.superseded_by).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import pandas as pd
import torch
from mlflow.entities import Run
from prefect import task

from lab2.core.data import Dataset
from lab2.core.describe import cell_run_name, factorisation_run_name
from lab2.core.factorise import q1_row
from lab2.core.identity import code_version, tensor_digest, unit_identity
from lab2.core.params import METRICS, FactorisationSetup, GridParams
from lab2.tasks import tracking
from lab2.tasks.layout import (
    DIVERGED_TAG,
    GD_STEP,
    IDENTITY_TAG,
    MLP_STEP,
    PARENT_TAG,
    RECONSTRUCTION_CSV,
    SUPERSEDED_BY_TAG,
    SUPERSEDED_IDENTITY_TAG,
    SVD_STEP,
    U_ROWS_CSV,
    U_SCATTER_PNG,
    VAL_CORRECT_TAG,
    units_csv,
    units_tag,
)
from lab2.tasks.records import GD_LR_USED, cell_params, gd_params, svd_params
from lab2.tasks.tracking import RunRecord

K = TypeVar("K", bound=Hashable)

UNITS_COLUMNS = ["step", "name", "identity", "run_id", "reused"]


def identity_of(step: str, params: Mapping[str, object], data_digest: str) -> str:
    """The identity of a unit of `step` with these params on data of this digest, at this code
    version."""
    return unit_identity(step, params, data_digest, code_version())


def factorisation_units(
    matrices: Mapping[str, torch.Tensor], data: Dataset, setup: FactorisationSetup
) -> tuple[dict, dict, dict]:
    """Steps, run names and identities of Q1's units, keyed (matrix, step)."""
    digests = {
        name: data.digest if name == data.name else tensor_digest(matrix)
        for name, matrix in matrices.items()
    }
    params = {(m, GD_STEP): gd_params(m, setup) for m in matrices} | {
        (m, SVD_STEP): svd_params(m, setup.rank) for m in matrices
    }
    steps = {key: key[1] for key in params}
    names = {key: factorisation_run_name(key[1], key[0]) for key in params}
    return steps, names, {key: identity_of(key[1], p, digests[key[0]]) for key, p in params.items()}


def grid_units(params: GridParams, digest: str) -> tuple[dict, dict, dict]:
    """Steps, run names and identities of Q2's cells, keyed (lr, iterations, seed, split seed);
    whether a cell has a figure is part of its identity."""
    keys = [
        (lr, it, seed, k)
        for k in params.split_seeds
        for lr in params.lrs
        for it in params.iterations
        for seed in params.seeds
    ]
    identity = {"cell_figures": params.cell_figures}
    identities = {
        key: identity_of(
            MLP_STEP, {**cell_params(params.mlp_setup(key[3]), *key[:3]), **identity}, digest
        )
        for key in keys
    }
    return dict.fromkeys(keys, MLP_STEP), {key: cell_run_name(*key) for key in keys}, identities


@dataclass(frozen=True)
class FinishedRun:
    """A FINISHED run found for a unit's identity: its id, final metrics, tags and params."""

    run_id: str
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    params: Mapping[str, str]


@dataclass(frozen=True)
class Plan(Generic[K]):
    """A flow's units by key: each one's step, name and identity, and the FINISHED runs reused for
    some of them."""

    steps: Mapping[K, str]
    names: Mapping[K, str]
    identities: Mapping[K, str]
    reused: Mapping[K, FinishedRun]

    @property
    def to_compute(self) -> list[K]:
        """The units without a run to reuse, in plan order."""
        return [key for key in self.identities if key not in self.reused]

    def run_ids(self, written: Mapping[K, str]) -> dict[K, str]:
        """Each unit's run: reused, or written now."""
        return {**{k: run.run_id for k, run in self.reused.items()}, **written}

    def table(self, written: Mapping[K, str]) -> pd.DataFrame:
        """One row per unit: step, name, identity, run id (reused or written now), reused or not."""
        run_ids = self.run_ids(written)
        rows = [
            [self.steps[k], self.names[k], identity, run_ids[k], k in self.reused]
            for k, identity in self.identities.items()
        ]
        return pd.DataFrame(rows, columns=UNITS_COLUMNS)


@task
def plan_units(
    experiment: str,
    steps: Mapping[K, str],
    names: Mapping[K, str],
    identities: Mapping[K, str],
    force: bool = False,
) -> Plan[K]:
    """Which units a FINISHED run of their identity already holds (one scan of the experiment); with
    `force`, none."""
    found = (
        {}
        if force
        else _newest(
            _finished_by_identity(
                tracking.search_runs(tracking.experiment_id(experiment), _FINISHED),
                identities.values(),
            )
        )
    )
    reused = {key: found[identity] for key, identity in identities.items() if identity in found}
    return Plan(dict(steps), dict(names), dict(identities), reused)


def record_units(parent_run_id: str, flow_name: str, units: pd.DataFrame) -> None:
    """Every unit of a flow with its run and whether it was reused: units/{flow}.csv and counts as
    tags."""
    reused = int(units["reused"].sum())
    tags = {
        units_tag(flow_name, "reused"): str(reused),
        units_tag(flow_name, "computed"): str(len(units) - reused),
    }
    tracking.log_to_run(parent_run_id, RunRecord(tags=tags))
    tracking.log_text(parent_run_id, units.to_csv(index=False), units_csv(flow_name))


@task
def settle(parent_run_id: str) -> None:
    """As a pipeline closes (one scan): mark KILLED the runs whose owner process is gone, and leave
    each identity this run's units carry on its newest FINISHED run."""
    exp_id = tracking.experiment_of(parent_run_id)
    runs = tracking.search_runs(exp_id, "")
    tracking.reap_stale_runs([r for r in runs if r.info.status == "RUNNING"])
    units = [r for r in runs if r.data.tags.get(PARENT_TAG) == parent_run_id]
    identities = {r.data.tags[IDENTITY_TAG] for r in units if IDENTITY_TAG in r.data.tags}
    for identity, carriers in _finished_by_identity(runs, identities).items():
        newest = max(carriers, key=_age)
        for run in carriers:
            if run is not newest:
                _supersede(run.info.run_id, newest.info.run_id, identity)


_FINISHED = f"attributes.status = 'FINISHED' and tags.`{IDENTITY_TAG}` LIKE '%'"


def _finished_by_identity(runs: list[Run], identities: Collection[str]) -> dict[str, list[Run]]:
    wanted = set(identities)
    found: dict[str, list[Run]] = {}
    for run in runs:
        # None if a concurrent process just superseded the run
        identity = run.data.tags.get(IDENTITY_TAG)
        if run.info.status == "FINISHED" and identity in wanted:
            found.setdefault(identity, []).append(run)
    return found


def _newest(by_identity: Mapping[str, list[Run]]) -> dict[str, FinishedRun]:
    newest = {identity: max(runs, key=_age) for identity, runs in by_identity.items()}
    return {
        i: FinishedRun(r.info.run_id, dict(r.data.metrics), dict(r.data.tags), dict(r.data.params))
        for i, r in newest.items()
    }


def _supersede(run_id: str, newest_run_id: str, identity: str) -> None:
    """An older run of an identity hands it over to the newest run that holds it."""
    superseded = {SUPERSEDED_BY_TAG: newest_run_id, SUPERSEDED_IDENTITY_TAG: identity}
    tracking.set_tags_once(run_id, superseded)
    tracking.delete_tag(run_id, IDENTITY_TAG)


def _age(run: Run) -> tuple[int, str]:
    return (run.info.end_time or 0, run.info.run_id)


@task
def reuse_factorisation(
    parent_run_id: str, name: str, matrix: torch.Tensor, data: Dataset, plan: Plan
) -> dict[str, object]:
    """Q1 of one matrix from its reused runs: its row of Q1's table; the dataset's U scatter and
    rows, or the lab's matrix reconstructed, copied onto the parent."""
    gd, svd = plan.reused[(name, GD_STEP)], plan.reused[(name, SVD_STEP)]
    copied = [U_SCATTER_PNG, U_ROWS_CSV] if name == data.name else [RECONSTRUCTION_CSV]
    for path in copied:
        tracking.copy_artifact(gd.run_id, path, parent_run_id)
    return reused_factorisation_row(name, matrix, gd, svd)


def reused_factorisation_row(
    name: str, matrix: torch.Tensor, gd: FinishedRun, svd: FinishedRun
) -> dict[str, object]:
    """A row of Q1's table (lab2.core.factorise.q1_row) read from the reused `gd-factorise` and
    `svd-baseline` runs."""
    angles = {
        k: gd.metrics[k]
        for k in sorted(gd.metrics)
        if k.startswith(("principal_angle_", "u_column_angle_"))
    }
    return q1_row(
        name,
        matrix,
        float(gd.params[GD_LR_USED]),
        gd.metrics.get("loss", math.nan),
        svd.metrics["loss"],
        angles,
    )


def reused_cell_rows(reused: Mapping[tuple, FinishedRun]) -> list[dict[str, object]]:
    """Rows of the grid's table, keyed (lr, iterations, seed, split seed), read from reused runs'
    final metrics."""
    return [
        {
            "lr": lr,
            "iterations": it,
            "seed": seed,
            "split_seed": split,
            **{m: run.metrics[m] for m in METRICS},
            "diverged": run.tags.get(DIVERGED_TAG) == "true",
            "val_correct": run.tags.get(VAL_CORRECT_TAG, ""),
        }
        for (lr, it, seed, split), run in reused.items()
    ]


@task
def read_reused_curves(
    reused: Mapping[tuple, FinishedRun], trained: Collection[tuple[float, int, int]]
) -> pd.DataFrame:
    """Training-loss curves (lr, seed, split_seed, step, loss) of reused trajectories not trained
    again, from each one's longest cell."""
    longest: dict[tuple[float, int, int], tuple[int, str]] = {}
    for (lr, iterations, seed, split), run in reused.items():
        if (lr, seed, split) not in trained and iterations > longest.get(
            (lr, seed, split), (0, "")
        )[0]:
            longest[(lr, seed, split)] = (iterations, run.run_id)
    rows = [
        {"lr": lr, "seed": seed, "split_seed": split, "step": step, "loss": loss}
        for (lr, seed, split), (iterations, run_id) in longest.items()
        for step, loss in tracking.metric_history(run_id, "train_loss")
        if step < iterations  # the last point is the final loss, logged after the curve
    ]
    return pd.DataFrame(rows, columns=["lr", "seed", "split_seed", "step", "loss"])
