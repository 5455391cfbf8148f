"""Seed comparison: group MLP cells by every parameter but the seed, and say which differences are real."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from scipy import stats

from lab2core.params import MLPSetup

METRICS = ("train_accuracy", "val_accuracy", "train_loss", "val_loss")
STATISTICS = ("n", "mean", "std", "min", "max", "ci95_low", "ci95_high")
CELL_KEYS = ("lr", "iterations")  # the grid's own axes; the rest of a cell's setup sits beside them


@dataclass(frozen=True)
class SeedComparison:
    """A grid's seed summary, the verdicts on neighbouring cells, and the best group."""

    summary: pd.DataFrame
    overlaps: pd.DataFrame

    @property
    def best(self) -> dict[str, object]:
        return best_group(self.summary)

    def best_label(self) -> str:
        best = self.best
        return f"lr={best['lr']:g} iterations={best['iterations']}: val accuracy {_mean_std(best, 'val_accuracy')}"

    def display(self) -> pd.DataFrame:
        """A compact table for people: one row per group, mean ± std and the 95% interval."""
        return display_table(self.summary)

    def html(self) -> str:
        """The display table and the verdicts on neighbouring cells as one HTML page."""
        return (
            "<html><head><meta charset='utf-8'><title>lab2 seed summary</title></head><body>"
            f"<h2>MLP cells over seeds</h2><p>Best group: {self.best_label()}</p>{self.display().to_html(index=False)}"
            f"<h2>Neighbouring learning rates</h2>{self.overlaps.to_html(index=False)}"
            f"<h2>All statistics</h2>{self.summary.to_html(index=False)}</body></html>"
        )


def compare_seeds(cells: pd.DataFrame) -> SeedComparison:
    """Seed summary and neighbour verdicts of a table of cells."""
    summary = seed_summary(cells)
    return SeedComparison(summary, neighbour_overlaps(summary))


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per group: its keys, N, and mean ± std of each metric, plus the 95% interval of val accuracy."""
    keys = [c for c in group_columns(summary) if summary[c].nunique() > 1 or c in CELL_KEYS]
    table = summary[keys].copy()
    table["n"] = summary["val_accuracy_n"].astype(int)
    for metric in METRICS:
        table[metric] = [_mean_std(row, metric) for _, row in summary.iterrows()]
    table["val_accuracy_ci95"] = [
        f"[{row.val_accuracy_ci95_low:.3f}, {row.val_accuracy_ci95_high:.3f}]" for row in summary.itertuples()
    ]
    return table


def _mean_std(row: Mapping[str, object], metric: str) -> str:
    return f"{row[f'{metric}_mean']:.3f} ± {row[f'{metric}_std']:.3f}"


def group_columns(cells: pd.DataFrame) -> list[str]:
    """Every parameter column of `cells` except the seed: the grid axes first, then the setup."""
    derived = [c for c in cells.columns if c.startswith(tuple(f"{m}_" for m in METRICS))]
    setup = [c for c in cells.columns if c not in (*CELL_KEYS, "seed", *METRICS, "diverged", *derived)]
    return [*CELL_KEYS, *sorted(setup)]


def group_label(params: Mapping[str, object]) -> str:
    """A cell's group (its params but the seed), short: "lr=0.1 it=100", plus any setup value off the lab's default."""
    defaults = MLPSetup().as_params()
    extras = [f"{k}={params[k]}" for k in sorted(params) if k in defaults and str(params[k]) != str(defaults[k])]
    return " ".join([f"lr={float(params['lr']):g}", f"it={params['iterations']}", *extras])


def seed_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Per group: N, mean, std, min, max and a Student-t 95% interval of every metric over its seeds."""
    keys = group_columns(cells)
    rows = []
    for key, group in cells.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        for metric in METRICS:
            row.update({f"{metric}_{s}": v for s, v in _describe(group[metric]).items()})
        rows.append(row)
    summary = pd.DataFrame(rows)
    return summary.sort_values(["iterations", "lr"], ascending=[True, False], ignore_index=True)


def _describe(values: pd.Series) -> dict[str, float]:
    finite = values.dropna()
    n, mean, std = len(finite), finite.mean(), finite.std(ddof=1)
    half = stats.t.ppf(0.975, n - 1) * std / n**0.5 if n > 1 else float("nan")
    return {"n": n, "mean": mean, "std": std, "min": finite.min(), "max": finite.max(),
            "ci95_low": mean - half, "ci95_high": mean + half}


def neighbour_overlaps(summary: pd.DataFrame, metric: str = "val_accuracy") -> pd.DataFrame:
    """For cells with the same iterations and adjacent lrs: do their seeds' 95% intervals overlap?"""
    rows = []
    for iterations, group in summary.groupby("iterations"):
        ordered = group.sort_values("lr").reset_index(drop=True)
        for lower, higher in zip(ordered.itertuples(), ordered.iloc[1:].itertuples()):
            low_a, high_a = getattr(lower, f"{metric}_ci95_low"), getattr(lower, f"{metric}_ci95_high")
            low_b, high_b = getattr(higher, f"{metric}_ci95_low"), getattr(higher, f"{metric}_ci95_high")
            overlap = low_a <= high_b and low_b <= high_a
            difference = getattr(higher, f"{metric}_mean") - getattr(lower, f"{metric}_mean")
            rows.append({"iterations": iterations, "lr_low": lower.lr, "lr_high": higher.lr,
                         f"{metric}_difference": difference,
                         "verdict": "intervals overlap: not distinguishable" if overlap else "real difference"})
    return pd.DataFrame(rows)


def best_group(summary: pd.DataFrame) -> dict[str, object]:
    """The group with the highest mean validation accuracy; ties go to fewer iterations, then higher lr."""
    ranked = summary.sort_values(["val_accuracy_mean", "iterations", "lr"], ascending=[False, True, False])
    return ranked.head(1).to_dict(orient="records")[0]


def compare_summaries(a: pd.DataFrame, b: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Two seed summaries side by side per (lr, iterations), with the difference of the means (b − a)."""
    keys = list(CELL_KEYS)
    means = [f"{m}_mean" for m in metrics]
    joined = a[keys + means].merge(b[keys + means], on=keys, how="outer", suffixes=("_a", "_b"))
    for m in means:
        joined[f"{m}_diff"] = joined[f"{m}_b"] - joined[f"{m}_a"]
    return joined.sort_values(["iterations", "lr"], ascending=[True, False], ignore_index=True)


def setup_differences(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Setup params (all but the grid axes and seed) whose values differ between two tables of cells."""
    columns = [c for c in group_columns(a) if c not in CELL_KEYS and c in b.columns]
    values = {c: (", ".join(map(str, sorted(a[c].unique()))), ", ".join(map(str, sorted(b[c].unique())))) for c in columns}
    return {c: pair for c, pair in values.items() if pair[0] != pair[1]}
