"""The pair table: one row per paired comparison of two groups, seed by seed, judged within the
family of all rows (Holm), with the validation rows' view and the verdict in words (see
lab2.core.seeds for the groups)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lab2.core.family import InFamily, judge_family
from lab2.core.stats import (
    CONFIDENCE,
    PairedComparison,
    compare_paired,
    probability_of_improvement,
    rows_interval,
)
from lab2.core.verdicts import call, caveats, higher_is_better, reasoning, verdict_line

REPEAT_KEYS = ("seed", "split_seed")  # what a group repeats over; pairs are matched on both
PAIR_COLUMNS = [
    "a",
    "b",
    "verdict",
    "call",
    "caveats",
    "kind",
    "metric",
    "higher_is_better",
    "n",
    "n_split_seeds",
    "mean_diff",
    "sd_diff",
    "ci_low",
    "ci_high",
    "p_t",
    "p_signflip",
    "p_signflip_min",
    "signflip_exact",
    "p_holm",
    "family",
    "family_confidence",
    "family_ci_low",
    "family_ci_high",
    "rows_ci_low",
    "rows_ci_high",
    "prob_improvement",
    "p_a_over_b",
    "p_a_over_b_ci_low",
    "p_a_over_b_ci_high",
    "p_a_better",
    "p_tie",
    "p_b_better",
    "plan_alpha",
    "seeds_needed",
    "seeds_needed_low",
    "seeds_needed_high",
    "min_effect",
    "seeds_needed_min_effect",
    "seeds_for_ci_min_effect",
    "p_equivalence",
    "p_equivalence_holm",
    "reasoning",
]


def match_seeds(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The two groups' values of `metric` joined on (seed, split_seed), with their hits per
    validation row when the metric is the validation accuracy and the cells carry them."""
    hits = (
        ["val_correct"]
        if metric == "val_accuracy" and "val_correct" in a and "val_correct" in b
        else []
    )
    left = a[[*REPEAT_KEYS, metric, *hits]].rename(
        columns={metric: "value_a", "val_correct": "hits_a"}
    )
    right = b[[*REPEAT_KEYS, metric, *hits]].rename(
        columns={metric: "value_b", "val_correct": "hits_b"}
    )
    return left.merge(right, on=list(REPEAT_KEYS)).sort_values(
        list(REPEAT_KEYS[::-1]), ignore_index=True
    )


def pair_table(
    pairs: Sequence[tuple[str, str, str]],
    matched: Sequence[pd.DataFrame],
    metric: str,
    min_effect: float | None,
    spread: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of `pairs` (a, b, kind) from their `matched` values (as match_seeds gives them),
    Holm over all of them; `spread`: the width of the metric's range. Returns the table and the
    matched values behind it."""
    # Each init seed's values averaged over its split seeds: with several splits the runs share
    # seeds and splits (a crossed design), so the independent units are the init seeds, not the
    # runs.
    units = [m.groupby("seed", sort=True)[["value_a", "value_b"]].mean() for m in matched]
    comparisons = [compare_paired(u["value_a"], u["value_b"], spread) for u in units]
    splits = [m["split_seed"].nunique() for m in matched]
    judged = judge_family(comparisons, spread, min_effect)
    views = [_rows_view(m, j.confidence) for m, j in zip(matched, judged, strict=True)]
    rows = [
        _pair_row(*pair, metric, c, j, min_effect, k, view)
        for pair, c, j, k, view in zip(pairs, comparisons, judged, splits, views, strict=True)
    ]
    table = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    # rliable's P(A > B), every run of A against every run of B
    over = [
        "p_a_over_b",
        "p_a_over_b_ci_low",
        "p_a_over_b_ci_high",
    ]
    table[over] = pd.DataFrame(
        [probability_of_improvement(u["value_a"], u["value_b"]) for u in units],
        columns=over,
        dtype=float,
    )
    for count in (
        "seeds_needed",
        "seeds_needed_low",
        "seeds_needed_high",
        "seeds_needed_min_effect",
        "seeds_for_ci_min_effect",
    ):
        table[count] = pd.array(table[count].tolist(), dtype="Int64")
    paired = (
        pd.concat(matched, ignore_index=True).drop(columns=["hits_a", "hits_b"], errors="ignore")
        if matched
        else pd.DataFrame()
    )
    return table, paired


def _rows_view(matched: pd.DataFrame, confidence: float) -> tuple[float, float]:
    """The pair's interval with the validation rows resampled, at the family's level (NaNs unless
    every matched cell carries its hits per validation row, as many in each)."""
    if "hits_a" not in matched or matched.empty:
        return float("nan"), float("nan")
    table = matched.set_index(list(REPEAT_KEYS)).sort_index()
    seeds, splits = (table.index.get_level_values(k).nunique() for k in (0, 1))
    lengths = {len(h) if isinstance(h, str) else 0 for h in [*table["hits_a"], *table["hits_b"]]}
    if len(table) != seeds * splits or len(lengths) != 1 or 0 in lengths:
        return float("nan"), float("nan")

    def hits(
        column: str,
    ) -> (
        np.ndarray
    ):  # init seeds × split seeds × validation rows (the table is sorted and complete)
        return np.array([[int(h) for h in row] for row in table[column]]).reshape(seeds, splits, -1)

    return rows_interval(
        hits("hits_a"), hits("hits_b"), confidence if np.isfinite(confidence) else CONFIDENCE
    )


def _pair_row(
    a: str,
    b: str,
    kind: str,
    metric: str,
    c: PairedComparison,
    judged: InFamily,
    min_effect: float | None,
    splits: int,
    rows: tuple[float, float],
) -> dict[str, object]:
    row = {
        "a": a,
        "b": b,
        "call": call(c, judged, metric, rows),
        "caveats": ";".join(caveats(c, judged, kind, splits, rows)),
        "kind": kind,
        "metric": metric,
        "higher_is_better": higher_is_better(metric),
        "n": c.n,
        "n_split_seeds": splits,
        "mean_diff": c.mean_diff,
        "sd_diff": c.sd_diff,
        "ci_low": c.ci_low,
        "ci_high": c.ci_high,
        "p_t": c.p_t,
        "p_signflip": c.p_signflip,
        "p_signflip_min": c.p_signflip_min,
        "signflip_exact": c.signflip_exact,
        "p_holm": judged.p_holm,
        "family": judged.size,
        "family_confidence": judged.confidence,
        "family_ci_low": judged.ci_low,
        "family_ci_high": judged.ci_high,
        "rows_ci_low": rows[0],
        "rows_ci_high": rows[1],
        "prob_improvement": c.prob_improvement,
        "p_a_better": c.p_a_better,
        "p_tie": c.p_tie,
        "p_b_better": c.p_b_better,
        "plan_alpha": judged.plan.alpha,
        "seeds_needed": judged.plan.seeds_needed,
        "seeds_needed_low": judged.plan.seeds_needed_low,
        "seeds_needed_high": judged.plan.seeds_needed_high,
        "min_effect": min_effect if min_effect else np.nan,
        "seeds_needed_min_effect": judged.plan.seeds_needed_min_effect,
        "seeds_for_ci_min_effect": judged.plan.seeds_for_ci_min_effect,
        "p_equivalence": judged.p_equivalence,
        "p_equivalence_holm": judged.p_equivalence_holm,
        "reasoning": reasoning(a, b, c, judged, metric, min_effect, kind, rows),
    }
    return {**row, "verdict": verdict_line(row)}
