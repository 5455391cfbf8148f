"""Since the last run: what went in that changed, and for each unit computed again, whether its
numbers moved.

Pure: it reads two runs' inputs (code, data, environment) and result tables, and judges. A run's
verdict is the worst of its units': unchanged (every unit the last run's), identical (bit for
bit), within-noise (float rounding, or seed noise by the project's paired statistics) or changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from lab2.core.family import significant
from lab2.core.pairs import REPEAT_KEYS
from lab2.core.params import METRICS
from lab2.core.seeds import CELL_KEYS, compare_runs

UNCHANGED, IDENTICAL, WITHIN_NOISE, CHANGED = "unchanged", "identical", "within-noise", "changed"
VERDICTS = (UNCHANGED, IDENTICAL, WITHIN_NOISE, CHANGED)  # best to worst
# relative: two results this close differ by float rounding only (summation order, threads)
FLOAT_NOISE = 1e-6
CELL = [*CELL_KEYS, *REPEAT_KEYS]  # a cell of the grid: its axes and the seeds it repeats over
FACTORISATION_METRICS = ["gd_loss", "svd_loss"]


@dataclass(frozen=True)
class Inputs:
    """What went into a run besides its parameters: the recipe's code (file → digest), the data
    (digest, one digest per row) and the environment (package versions, the torch thread count)."""

    code: Mapping[str, str]
    data: str
    rows: Sequence[str]
    environment: Mapping[str, str]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Inputs:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class UnitChange:
    """One part of a run computed again, against the same part of the last run."""

    what: str  # "Q1 lab1-3x3", "Q2 grid"
    verdict: str
    evidence: str  # rounded for reading


@dataclass(frozen=True)
class SinceLastRun:
    """A run against its predecessor: the last FINISHED run of the experiment with the same
    parameters."""

    predecessor: str | None  # its run id; None for the first run with these parameters
    causes: list[str] = field(default_factory=list)  # what went in that changed
    units: list[UnitChange] = field(default_factory=list)
    # units whose run is not the predecessor's (computed now, or reused from another run)
    new_units: int = 0
    predecessor_link: str | None = None  # its page in an MLflow server's UI

    @property
    def verdict(self) -> str:
        if self.new_units == 0:
            return UNCHANGED
        return max((u.verdict for u in self.units), key=VERDICTS.index, default=IDENTICAL)


def row_digests(features: np.ndarray, labels: np.ndarray) -> list[str]:
    """A short hash of each data row (its features and label), to count the rows a new copy of the
    data changed."""
    return [
        hashlib.sha256(np.ascontiguousarray(x).tobytes() + str(y).encode()).hexdigest()[:12]
        for x, y in zip(features, labels, strict=True)
    ]


def input_changes(before: Inputs, now: Inputs) -> list[str]:
    """What went in differently, each cause in words: the recipe files edited, the data's digest and
    rows changed, the environment's versions."""
    causes = []
    edited = sorted(f for f in {*before.code, *now.code} if before.code.get(f) != now.code.get(f))
    if edited:
        causes.append(f"recipe code: {', '.join(edited)}")
    if before.data != now.data:
        changed = sum(a != b for a, b in zip(before.rows, now.rows, strict=False)) + abs(
            len(before.rows) - len(now.rows)
        )
        causes.append(
            f"data: digest {before.data} → {now.data}, {changed} of {len(now.rows)} rows changed"
        )
    moved = [
        f"{k} {before.environment.get(k, '-')} → {now.environment.get(k, '-')}"
        for k in sorted({*before.environment, *now.environment})
        if before.environment.get(k) != now.environment.get(k)
    ]
    if moved:
        causes.append(f"environment: {', '.join(moved)}")
    return causes


def compare_factorisation(
    before: pd.DataFrame, now: pd.DataFrame, matrices: Sequence[str]
) -> list[UnitChange]:
    """Q1's `matrices` (factorisation.csv rows), each against the last run's: the same GD and SVD
    losses, losses within float rounding, or moved."""
    before, now = before.set_index("matrix"), now.set_index("matrix")
    changes = []
    for matrix in [m for m in matrices if m in before.index and m in now.index]:
        old, new = (
            before.loc[matrix, FACTORISATION_METRICS].astype(float),
            now.loc[matrix, FACTORISATION_METRICS].astype(float),
        )
        said = (
            f"GD {old['gd_loss']:.6g} → {new['gd_loss']:.6g}, optimum {old['svd_loss']:.6g} → "
            f"{new['svd_loss']:.6g}"
        )
        changes.append(UnitChange(f"Q1 {matrix}", _closeness(old.to_numpy(), new.to_numpy()), said))
    return changes


def compare_grid(
    before: pd.DataFrame, now: pd.DataFrame, compared: Sequence[tuple]
) -> list[UnitChange]:
    """The grid's `compared` cells (mlp_cells.csv rows keyed lr, iterations, seed, split_seed)
    against the last run's: bit for bit, within float rounding, or judged seed by seed with the
    paired statistics of `lab2 compare` (changed when a cell's difference is significant after
    Holm, or when a cell has one seed and no noise to measure it against)."""
    keys = set(map(tuple, compared))
    both = now.merge(before, on=CELL, suffixes=("", "_before"))
    both = both[[tuple(k) in keys for k in both[CELL].itertuples(index=False)]]
    if both.empty:
        return []
    old, new = (
        both[[f"{m}_before" for m in METRICS]].to_numpy(float),
        both[list(METRICS)].to_numpy(float),
    )
    verdict = _closeness(old, new)
    largest = np.nanmax(np.abs(new - old))
    if verdict != CHANGED:
        return [
            UnitChange("Q2 grid", verdict, f"{len(both)} cells, largest difference {largest:.2g}")
        ]
    pairs, _ = compare_runs(
        both[CELL + list(METRICS)],
        both[CELL + [f"{m}_before" for m in METRICS]].rename(
            columns=lambda c: c.removesuffix("_before")
        ),
        "val_accuracy",
        None,
    )
    moved = pairs[
        [
            significant(p) or n < 2
            for p, n in zip(pairs["p_holm"].fillna(1.0), pairs["n"], strict=True)
        ]
    ]
    moved = moved[moved["mean_diff"].abs() > 0]
    if moved.empty:
        return [
            UnitChange(
                "Q2 grid",
                WITHIN_NOISE,
                f"{len(both)} cells; no cell's val accuracy moved beyond its seeds' noise "
                f"(largest mean difference {pairs['mean_diff'].abs().max():.3f})",
            )
        ]
    said = "; ".join(
        (
            f"{r.a.removeprefix('A ')}: val accuracy {r.mean_diff:+.3f} (n={r.n}, Holm "
            f"p={r.p_holm:.2g})"
        )
        for r in moved.itertuples()
    )
    return [UnitChange("Q2 grid", CHANGED, f"{len(moved)} of {len(pairs)} cells moved: {said}")]


def _closeness(old: np.ndarray, new: np.ndarray) -> str:
    same = (old == new) | (np.isnan(old) & np.isnan(new))
    if same.all():
        return IDENTICAL
    scale = np.maximum(np.abs(old), np.abs(new))
    return WITHIN_NOISE if np.all(same | (np.abs(new - old) <= FLOAT_NOISE * scale)) else CHANGED


def since_last_run_markdown(since: SinceLastRun) -> str:
    """The description's first section: the verdict, the run it is against, what went in
    differently, what moved."""
    if since.predecessor is None:
        return (
            "### Since the last run\n\nThe first run with these parameters in this experiment: "
            "nothing to compare."
        )
    against = (
        f"[{since.predecessor}]({since.predecessor_link})"
        if since.predecessor_link
        else f"`{since.predecessor}`"
    )
    causes = (
        "; ".join(since.causes) if since.causes else "nothing (the same code, data and environment)"
    )
    paragraphs = [
        f"### Since the last run: **{since.verdict}**",
        f"Against run {against}, the last with the same parameters. "
        f"What went in differently: {causes}.",
    ]
    if since.new_units == 0:
        paragraphs.append("Every unit is the last run's: no number could move.")
    if since.units:
        paragraphs.append(
            "\n".join(f"- {u.what}: **{u.verdict}**. {u.evidence}" for u in since.units)
        )
    return "\n\n".join(paragraphs)


def since_last_run_line(since: SinceLastRun) -> str:
    """The verdict in one sentence, for a terminal or a log."""
    if since.predecessor is None:
        return "Since the last run: the first run with these parameters in this experiment."
    causes = "; ".join(since.causes) or "the same code, data and environment"
    return (
        f"Since the last run with these parameters ({since.predecessor}): {since.verdict}. What "
        f"went in differently: {causes}."
    )
