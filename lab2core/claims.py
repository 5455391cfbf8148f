"""The original report's statements, each held to the evidence: lab2's held-out runs, runs under the
report's protocol when a run holds them, and the report's own Appendix D.

The statements are data (reference/claims.csv: id, section, quote, check, about); each check names
a function here. A claim about the MLP grid is judged on each source of cells: *supported* when
lab2's held-out runs bear it out, *supported only under the report's protocol* when only the
report's numbers (or seed-report runs) do, else *contradicted*. A claim about Q1 is judged on the
run's factorisation table. A claim about Iris is judged only on a run of Iris (either copy): on
other data it is *not judged on this data*, since the report never said it of that data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lab2.core.data import LAB_MATRIX_NAME

CLAIMS = Path(__file__).with_name("reference") / "claims.csv"
SUPPORTED = "supported"
REPORT_ONLY = "supported only under the report's protocol"
CONTRADICTED = "contradicted"
UNCHECKABLE = "cannot be checked from the runs"
NOT_JUDGED = "not judged on this data"
IRIS_DATASETS = ("iris", "iris-uci")
# "much greater" accuracy: at least 5 points (3 of the report's 50 validation rows)
MUCH_GREATER = 0.05
# "very close (0.0004 difference)": the report's difference, printed to 4 decimals
REPORT_DIFFERENCE = 0.0005
SAME_PLANE_DEG = 1.0  # principal angles below this: the two U span the same plane
OVERFITTING_LR, BEST = 0.1, (0.01, 1000)
ACCURACIES = ("train_accuracy", "val_accuracy")
# accuracies are fractions of rows: closer than this they are equal (float noise in a mean or a
# difference)
TIE = 1e-9


@dataclass(frozen=True)
class Evidence:
    """What a run holds that the claims are judged on. Cells: lr, iterations, seed, train_accuracy,
    val_accuracy."""

    # factorisation.csv: matrix, gd_loss, svd_loss, principal and U-column angles
    factorisation: pd.DataFrame
    cells: pd.DataFrame | None  # lab2's held-out cells (None for a run under the report's protocol)
    appendix: pd.DataFrame  # the report's Appendix D as cells (its three runs as seeds 1–3)
    report_protocol_cells: pd.DataFrame | None = None  # seed-report runs, when the run holds them
    # u.csv: each data row's species and U coordinates (svd_u1, svd_u2, gd_u1, gd_u2)
    u: pd.DataFrame | None = None
    dataset: str = "iris"  # the run's dataset


@dataclass(frozen=True)
class Finding:
    holds: bool
    evidence: str  # what decided it, rounded for reading


def load_claims(path: Path = CLAIMS) -> pd.DataFrame:
    return pd.read_csv(path)


def appendix_cells(report_numbers: pd.DataFrame) -> pd.DataFrame:
    """The report's Appendix D (rows of report_numbers.csv) as cells: one per lr × iterations ×
    run."""
    appendix = report_numbers[report_numbers["source"] == "Appendix D"]
    cells = appendix.pivot_table(
        index=["lr", "iterations", "run"], columns="quantity", values="value"
    ).reset_index()
    return cells.rename(columns={"run": "seed"}).astype({"iterations": int, "seed": int})


def check_claims(evidence: Evidence, claims: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim: id, section, quote, verdict, evidence."""
    claims = load_claims() if claims is None else claims
    rows = []
    for claim in claims.itertuples():
        if claim.about == "iris" and evidence.dataset not in IRIS_DATASETS:
            verdict, said = (
                NOT_JUDGED,
                f"A claim about Iris; this run is on `{Path(evidence.dataset).stem}`",
            )
        else:
            verdict, said = _judge(claim.check, evidence)
        rows.append(
            {
                "id": claim.id,
                "section": claim.section,
                "quote": claim.quote,
                "verdict": verdict,
                "evidence": said,
            }
        )
    return pd.DataFrame(rows)


def _judge(check: str, evidence: Evidence) -> tuple[str, str]:
    if check in GRID_CHECKS:
        return _judge_grid(GRID_CHECKS[check], evidence)
    if check == "two_groups":
        if evidence.u is None:
            return UNCHECKABLE, "the run holds no U of the data"
        found = both_two_groups(evidence.u)
    elif check in FACTORISATION_CHECKS:
        found = FACTORISATION_CHECKS[check](evidence.factorisation)
    else:
        return UNCHECKABLE, "Lab 1's numbers are not part of this lab"
    return (SUPPORTED if found.holds else CONTRADICTED), found.evidence


def _judge_grid(check: Callable[[pd.DataFrame], Finding], evidence: Evidence) -> tuple[str, str]:
    sources = {
        "held-out runs": evidence.cells,
        "the report's Appendix D": evidence.appendix,
        "seed-report runs": evidence.report_protocol_cells,
    }
    found = {name: check(cells) for name, cells in sources.items() if cells is not None}
    said = "; ".join(f"{name}: {f.evidence}" for name, f in found.items())
    if "held-out runs" in found and found["held-out runs"].holds:
        return SUPPORTED, said
    return (REPORT_ONLY if any(f.holds for f in found.values()) else CONTRADICTED), said


def accuracy_rises(cells: pd.DataFrame) -> Finding:
    """Seed by seed, each step up in lr (at fixed iterations) and in iterations (at fixed lr): does
    any accuracy fall?"""
    steps, ties, falls = 0, 0, []
    for metric in ACCURACIES:
        table = cells.pivot_table(
            index=["seed", "iterations"], columns="lr", values=metric
        ).sort_index(axis=1)
        by_lr = table.diff(axis=1).iloc[:, 1:]
        table = cells.pivot_table(
            index=["seed", "lr"], columns="iterations", values=metric
        ).sort_index(axis=1)
        by_iterations = table.diff(axis=1).iloc[:, 1:]
        for changes in (by_lr, by_iterations):
            steps += int(changes.notna().sum().sum())
            ties += int((changes.abs() <= TIE).sum().sum())
            falls += [
                (metric, index, column, float(v))
                for index, row in changes.iterrows()
                for column, v in row.items()
                if v < -TIE
            ]
    if not falls:
        return Finding(True, f"no accuracy falls in {steps} steps up ({ties} stay equal)")
    metric, (seed, fixed), to, change = min(falls, key=lambda f: f[3])
    return Finding(
        False,
        f"{len(falls)} of {steps} steps up lower an accuracy; the most: {metric.split('_')[0]} "
        f"{change:+.2f} (seed {seed}, {_step(fixed, to, cells)})",
    )


def _step(fixed: float, to: float, cells: pd.DataFrame) -> str:
    if float(fixed) in set(cells["iterations"].astype(float)) and float(to) in set(
        cells["lr"].astype(float)
    ):
        return f"{int(fixed)} iterations, up to lr {to:g}"
    return f"lr {fixed:g}, up to {int(to)} iterations"


def train_much_above_val(cells: pd.DataFrame) -> Finding:
    gap = cells["train_accuracy"] - cells["val_accuracy"]
    much = gap >= MUCH_GREATER - TIE
    return Finding(
        bool(much.all()),
        f"training ≥ validation + {MUCH_GREATER:g} in {int(much.sum())} of {len(gap)} cells; "
        f"validation ≥ training in {int((gap <= TIE).sum())}",
    )


def overfits_at_lr(cells: pd.DataFrame, lr: float = OVERFITTING_LR) -> Finding:
    """A sign of overfitting at `lr`: at some iteration count, a mean validation accuracy below that
    of a smaller lr whose mean training accuracy is no higher."""
    means = cells.groupby(["iterations", "lr"])[list(ACCURACIES)].mean()
    signs = []
    for iterations, group in means.groupby(level="iterations"):
        group = group.droplevel("iterations")
        if lr not in group.index:
            continue
        at = group.loc[lr]
        smaller = group[
            (group.index < lr)
            & (group["val_accuracy"] > at["val_accuracy"] + TIE)
            & (group["train_accuracy"] <= at["train_accuracy"] + TIE)
        ]
        signs += [
            (
                f"{iterations} iterations: validation {at['val_accuracy']:.2f} against {v:.2f} at "
                f"lr {k:g}"
            )
            for k, v in smaller["val_accuracy"].items()
        ]
    if signs:
        return Finding(True, "; ".join(signs))
    return Finding(
        False,
        f"at lr {lr:g} no mean validation accuracy is below a smaller lr's that trains no better",
    )


def best_is(cells: pd.DataFrame, group: tuple[float, int] = BEST) -> Finding:
    means = cells.groupby(["lr", "iterations"])["val_accuracy"].mean()
    best = means.max()
    tied = [f"lr {lr:g} × {iterations}" for (lr, iterations), v in means.items() if v >= best - TIE]
    mine = means.get(group, np.nan)
    said = (
        f"lr {group[0]:g} × {group[1]}: mean validation {mine:.3f}; best {best:.3f} "
        f"({', '.join(tied)})"
    )
    return Finding(bool(mine >= best - TIE), said)


def reach_99(cells: pd.DataFrame, group: tuple[float, int] = BEST) -> Finding:
    rows = cells[(cells["lr"] == group[0]) & (cells["iterations"] == group[1])]
    lowest = rows[list(ACCURACIES)].min()
    return Finding(
        bool((lowest >= 0.99 - TIE).all()) and len(rows) > 0,
        f"lowest over seeds at lr {group[0]:g} × {group[1]}: training "
        f"{lowest['train_accuracy']:.2f}, "
        f"validation {lowest['val_accuracy']:.2f}",
    )


def data_matrix(factorisation: pd.DataFrame) -> pd.Series:
    """Q1's row of the dataset's centred features (the row that is not the lab's 3×3 matrix)."""
    return factorisation[factorisation["matrix"] != LAB_MATRIX_NAME].set_index("matrix").iloc[0]


def gd_near_svd(factorisation: pd.DataFrame) -> Finding:
    iris = data_matrix(factorisation)
    gap = iris["gd_loss"] - iris["svd_loss"]
    return Finding(
        bool(abs(gap) <= REPORT_DIFFERENCE),
        f"GD {iris['gd_loss']:.4f}, SVD {iris['svd_loss']:.4f}: GD − SVD {gap:+.5f} "
        "(SVD's is the rank-2 optimum)",
    )


def same_plane_other_axes(factorisation: pd.DataFrame) -> Finding:
    """GD's U and SVD's U: the same plane (principal angles near 0) whose axes point elsewhere
    (U-column angles)."""
    iris = data_matrix(factorisation)
    planes = [iris[c] for c in iris.index if c.startswith("principal_angle")]
    axes = [iris[c] for c in iris.index if c.startswith("u_column_angle")]
    same_plane, turned = max(planes) < SAME_PLANE_DEG, max(axes) >= SAME_PLANE_DEG
    said = (
        f"U's columns differ by {', '.join(f'{a:.0f}°' for a in axes)}; the planes they span by "
        f"{', '.join(f'{a:.2g}°' for a in planes)}: the same groups, seen along other axes of "
        "one plane"
    )
    return Finding(same_plane and turned, said)


def both_two_groups(u: pd.DataFrame) -> Finding:
    """Two groups in SVD's U and in GD's."""
    found = {
        method: two_groups(u.rename(columns={f"{method}_u1": "u1", f"{method}_u2": "u2"}))
        for method in ("svd", "gd")
    }
    return Finding(
        all(f.holds for f in found.values()),
        "; ".join(f"{method.upper()}: {f.evidence}" for method, f in found.items()),
    )


def two_groups(u: pd.DataFrame) -> Finding:
    """Species whose rows overlap along the direction that best separates them in U's plane are one
    group; are there two groups?"""
    species = sorted(u["species"].unique())
    group_of = {s: s for s in species}
    for k, a in enumerate(species):
        for b in species[k + 1 :]:
            if _overlap(
                u[u["species"] == a][["u1", "u2"]].to_numpy(),
                u[u["species"] == b][["u1", "u2"]].to_numpy(),
            ):
                merged, into = group_of[b], group_of[a]
                group_of = {s: into if g == merged else g for s, g in group_of.items()}
    groups: dict[str, list[str]] = {}
    for s, g in group_of.items():
        groups.setdefault(g, []).append(str(s))
    said = f"{len(groups)} group{'' if len(groups) == 1 else 's'}: " + " | ".join(
        " + ".join(members) for members in groups.values()
    )
    return Finding(len(groups) == 2, said)


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Do two species' rows overlap along Fisher's discriminant direction? The same answer for any
    invertible linear map of the plane, so for GD's U (SVD's turned and stretched) as for SVD's."""
    direction = np.linalg.pinv(np.cov(a, rowvar=False) + np.cov(b, rowvar=False)) @ (
        b.mean(axis=0) - a.mean(axis=0)
    )
    along_a, along_b = a @ direction, b @ direction
    return bool(along_a.max() >= along_b.min())


GRID_CHECKS: Mapping[str, Callable[[pd.DataFrame], Finding]] = {
    "accuracy_rises": accuracy_rises,
    "train_much_above_val": train_much_above_val,
    "overfits_at_lr_0.1": overfits_at_lr,
    "best_is_lr_0.01_it_1000": best_is,
    "reach_99_at_lr_0.01_it_1000": reach_99,
}
FACTORISATION_CHECKS: Mapping[str, Callable[[pd.DataFrame], Finding]] = {
    "gd_near_svd": gd_near_svd,
    "same_plane_other_axes": same_plane_other_axes,
}
