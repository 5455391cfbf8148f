"""Seed comparison: group MLP cells by every parameter but the seeds, and say which differences are
real.

A group repeats one setup over init seeds (and split seeds). Groups are compared in pairs, seed
by seed: seed s (and split seed k) gives the same initial weights (and data split) in both
groups, so the comparison is paired (see lab2.core.stats).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from lab2.core.errors import InputError
from lab2.core.pairs import REPEAT_KEYS, match_seeds, pair_table
from lab2.core.params import DEFAULT_MIN_EFFECT, METRICS, MLPSetup
from lab2.core.stats import (
    INTERVAL_KIND,
    binomial_se,
    describe,
    few_seeds_warning,
    variance_sources,
)
from lab2.core.verdicts import SHORT_KEYS

BOUNDS = {
    "train_accuracy": (0.0, 1.0),
    "val_accuracy": (0.0, 1.0),
    "train_loss": (0.0, np.inf),
    "val_loss": (0.0, np.inf),
}
STATISTICS = ("n", "mean", "std", "min", "max", "ci95_low", "ci95_high", "iqm")
CELL_KEYS = ("lr", "iterations")  # the grid's own axes; the rest of a cell's setup sits beside them
SUMMARY_EXTRAS = (
    "group",
    "n_seeds",
    "n_split_seeds",
    "val_rows",
    "val_resolution",
    "interval",
    "warning",
)
PAIR_METRIC = "val_accuracy"


@dataclass(frozen=True)
class SeedComparison:
    """A grid's seed summary, its paired comparisons (and the per-seed values behind them), and the
    best group."""

    summary: pd.DataFrame
    pairs: pd.DataFrame
    # a, b, seed, split_seed, value_a, value_b
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)

    @cached_property
    def best(self) -> dict[str, object]:
        """The best group's row of the summary (see best_group)."""
        return best_group(self.summary)


def compare_seeds(
    cells: pd.DataFrame,
    val_rows: int | None = None,
    min_effect: float | None = DEFAULT_MIN_EFFECT,
    named: Sequence[tuple[str, str]] = (),
    metric: str = PAIR_METRIC,
) -> SeedComparison:
    """Seed summary and paired comparisons of a table of cells.

    Without `named` pairs: neighbours along each grid axis and every group against the best; with
    them, those pairs only ("lr=0.1 iterations=1000" names a group by its keys), each still judged
    within the grid's family (the default pairs and the named ones): a pair chosen after seeing the
    table gets the same verdict as in it.
    """
    cells = with_repeat_keys(cells)
    summary = seed_summary(cells, val_rows)
    chosen = _unique([(find_group(summary, a), find_group(summary, b), "named") for a, b in named])
    pairs, paired = seed_pairs(
        cells, _unique([*chosen, *default_pairs(summary)]), metric, min_effect
    )
    if chosen:
        pairs = pairs.head(len(chosen))
        paired = paired.merge(pairs[["a", "b"]], on=["a", "b"])
    return SeedComparison(summary, pairs, paired)


def with_repeat_keys(cells: pd.DataFrame) -> pd.DataFrame:
    """`cells` with integer seed and split_seed columns (split seed 0 where none is recorded)."""
    cells = cells if "split_seed" in cells.columns else cells.assign(split_seed=0)
    return cells.astype({"seed": int, "split_seed": int})


def group_columns(cells: pd.DataFrame) -> list[str]:
    """Every parameter column of `cells` except the seeds: the grid axes first, then the setup."""
    derived = [c for c in cells.columns if c.startswith(tuple(f"{m}_" for m in METRICS))]
    excluded = (
        *CELL_KEYS,
        *REPEAT_KEYS,
        *METRICS,
        "diverged",
        "val_correct",
        *SUMMARY_EXTRAS,
        *derived,
    )
    setup = [c for c in cells.columns if c not in excluded]
    return [*CELL_KEYS, *sorted(setup)]


def group_label(params: Mapping[str, float | int | str]) -> str:
    """A cell's group (its params but the seed), short: "lr=0.1 it=100", plus any setup value off
    the lab's default."""
    defaults = MLPSetup().as_params()
    extras = [
        f"{k}={params[k]}"
        for k in sorted(params)
        if k in defaults and k not in REPEAT_KEYS and str(params[k]) != str(defaults[k])
    ]
    return " ".join(
        [
            f"lr={float(params['lr']):g}",
            f"{SHORT_KEYS['iterations']}={params['iterations']}",
            *extras,
        ]
    )


def seed_summary(cells: pd.DataFrame, val_rows: int | None = None) -> pd.DataFrame:
    """Per group: its label, seed counts, and per metric n, mean, std, min, max and a 95% t interval
    of the mean (inside the metric's range); with several split seeds, the spread from the init
    seed and from the split; the validation set's resolution (1/rows) and the binomial SE of the
    group's val accuracy."""
    cells = with_repeat_keys(cells)
    keys = group_columns(cells)
    shown = _label_keys(cells, keys)
    several_splits = cells["split_seed"].nunique() > 1
    rows = []
    for key, group in cells.groupby(keys, sort=False):
        row = dict(zip(keys, key, strict=True))
        row["group"] = _label(row, shown)
        row["n_seeds"], row["n_split_seeds"] = (
            group["seed"].nunique(),
            group["split_seed"].nunique(),
        )
        for metric in METRICS:
            stats = describe(group[metric], BOUNDS[metric])
            values = (
                stats.n,
                stats.mean,
                stats.sd,
                stats.min,
                stats.max,
                stats.ci_low,
                stats.ci_high,
                stats.iqm,
            )
            row.update({f"{metric}_{s}": v for s, v in zip(STATISTICS, values, strict=True)})
            if several_splits:
                init, split, init_ci, split_ci = variance_sources(
                    group[["seed", "split_seed"]].assign(value=group[metric])
                )
                row[f"{metric}_sd_init"], row[f"{metric}_sd_split"] = init, split
                row[f"{metric}_sd_init_ci95_low"], row[f"{metric}_sd_init_ci95_high"] = init_ci
                row[f"{metric}_sd_split_ci95_low"], row[f"{metric}_sd_split_ci95_high"] = split_ci
        row["val_rows"] = val_rows if val_rows else np.nan
        row["val_resolution"] = 1 / val_rows if val_rows else np.nan
        row["val_accuracy_binomial_se"] = binomial_se(row["val_accuracy_mean"], val_rows)
        row["interval"] = INTERVAL_KIND
        row["warning"] = few_seeds_warning(
            row["val_accuracy_n"], "runs (seed × split seed)" if several_splits else "seeds"
        )
        rows.append(row)
    summary = pd.DataFrame(rows)
    return summary.sort_values(["iterations", "lr"], ascending=[True, False], ignore_index=True)


def _label_keys(cells: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The keys a group label shows: the grid axes, and setup keys whose values differ between
    groups."""
    return [k for k in keys if k in CELL_KEYS or cells[k].nunique() > 1]


def _label(row: Mapping[str, object], keys: Sequence[str]) -> str:
    return " ".join(f"{k}={_value(row[k])}" for k in keys)


def _value(value: object) -> str:
    # the shortest text that reads back the same
    return repr(float(value)) if isinstance(value, float) else str(value)


def best_group(summary: pd.DataFrame) -> dict[str, object]:
    """The group with the highest mean validation accuracy; ties go to fewer iterations, then higher
    lr."""
    ranked = summary.sort_values(
        ["val_accuracy_mean", "iterations", "lr"], ascending=[False, True, False]
    )
    return ranked.head(1).to_dict(orient="records")[0]


def default_pairs(summary: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(a, b, kind) for neighbours along each grid axis (a the larger value) and for the best group
    against every other (a the best); a pair already listed is not listed again."""
    keys = group_columns(summary)
    pairs = []
    for axis in CELL_KEYS:
        others = [k for k in keys if k != axis]
        for _, group in summary.groupby(others, sort=True):
            ordered = group.sort_values(axis, ascending=False)["group"].tolist()
            pairs += [
                (a, b, f"neighbour {axis}") for a, b in zip(ordered, ordered[1:], strict=False)
            ]
    best = best_group(summary)["group"]
    return _unique(
        pairs + [(best, other, "vs best") for other in summary["group"] if other != best]
    )


def _unique(pairs: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """`pairs` without a pair of groups already listed (in either order): the first listing
    stays."""
    seen: set[frozenset[str]] = set()
    unique = []
    for a, b, kind in pairs:
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            unique.append((a, b, kind))
    return unique


def parse_group(text: str) -> dict[str, str]:
    """ "lr=0.1 iterations=1000" (or the label MLflow shows, "lr=0.1 it=1000") as {"lr": "0.1",
    "iterations": "1000"}."""
    tokens = text.split()
    bad = [t for t in tokens if t.count("=") != 1 or t.startswith("=") or t.endswith("=")]
    if not tokens or bad:
        raise InputError(
            f"group {text!r}: name a group as KEY=VALUE pairs separated by spaces, e.g. "
            "'lr=0.1 iterations=1000'"
        )
    long_keys = {short: key for key, short in SHORT_KEYS.items()}
    return {long_keys.get(k, k): v for k, v in (t.split("=") for t in tokens)}


def find_group(summary: pd.DataFrame, text: str) -> str:
    """The label of the one group whose keys match every KEY=VALUE of `text`; InputError naming the
    choices otherwise."""
    query = parse_group(text)
    keys = group_columns(summary)
    unknown = [k for k in query if k not in keys]
    if unknown:
        raise InputError(
            f"group {text!r}: unknown key {', '.join(unknown)}; groups are named by "
            f"{', '.join(keys)}"
        )
    matches = summary[np.logical_and.reduce([_matches(summary[k], v) for k, v in query.items()])]
    if len(matches) != 1:
        found = (
            "no group"
            if matches.empty
            else f"{len(matches)} groups ({'; '.join(matches['group'])})"
        )
        raise InputError(
            f"group {text!r} matches {found}; name one of: {'; '.join(summary['group'])}"
        )
    return matches["group"].iloc[0]


def _matches(column: pd.Series, value: str) -> pd.Series:
    try:
        return np.isclose(pd.to_numeric(column), float(value), rtol=1e-9, atol=0)
    except (ValueError, TypeError):
        return column.astype(str) == value


def seed_pairs(
    cells: pd.DataFrame,
    pairs: Sequence[tuple[str, str, str]],
    metric: str = PAIR_METRIC,
    min_effect: float | None = DEFAULT_MIN_EFFECT,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per (a, b, kind): the paired comparison of `metric` over the seeds both groups share,
    with Holm's adjustment over all rows; and the per-seed values behind them (a, b, seed,
    split_seed, value_a, value_b)."""
    cells = with_repeat_keys(cells)
    keys = group_columns(cells)
    shown = _label_keys(cells, keys)
    by_label = {
        _label(dict(zip(keys, key, strict=True)), shown): group
        for key, group in cells.groupby(keys, sort=False)
    }
    matched = [match_seeds(by_label[a], by_label[b], metric).assign(a=a, b=b) for a, b, _ in pairs]
    return pair_table(pairs, matched, metric, min_effect, BOUNDS[metric][1] - BOUNDS[metric][0])


def compare_runs(
    cells_a: pd.DataFrame,
    cells_b: pd.DataFrame,
    metric: str = PAIR_METRIC,
    min_effect: float | None = DEFAULT_MIN_EFFECT,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two runs' grids cell by cell (lr, iterations) and seed by seed: A's cell against B's; Holm
    over the cells. No validation rows' view: two runs' validation rows are the same rows only if
    their setups are."""
    a, b = (
        with_repeat_keys(c).drop(columns="val_correct", errors="ignore") for c in (cells_a, cells_b)
    )
    keys = list(CELL_KEYS)
    shared = a[keys].drop_duplicates().merge(b[keys].drop_duplicates(), on=keys)
    shared = shared.sort_values(["iterations", "lr"], ascending=[True, False])
    pairs, matched = [], []
    for lr, iterations in shared.itertuples(index=False):
        label = _label({"lr": lr, "iterations": iterations}, keys)
        in_a = a[(a["lr"] == lr) & (a["iterations"] == iterations)]
        in_b = b[(b["lr"] == lr) & (b["iterations"] == iterations)]
        pairs.append((f"A {label}", f"B {label}", "run A vs run B"))
        matched.append(match_seeds(in_a, in_b, metric).assign(a=f"A {label}", b=f"B {label}"))
    return pair_table(pairs, matched, metric, min_effect, BOUNDS[metric][1] - BOUNDS[metric][0])


def setup_differences(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Setup params (all but the grid axes and seeds) whose values differ between two tables of
    cells."""
    columns = [c for c in group_columns(a) if c not in CELL_KEYS and c in b.columns]
    values = {
        c: (", ".join(map(str, sorted(a[c].unique()))), ", ".join(map(str, sorted(b[c].unique()))))
        for c in columns
    }
    return {c: pair for c, pair in values.items() if pair[0] != pair[1]}
