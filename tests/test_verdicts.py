"""The words of a verdict on constructed cases, the awkward ones first: the scale's rules, the
equivalence test against statsmodels, one line per comparison, each caveat once, the summary."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from lab2.core.describe import results_summary
from lab2.core.family import InFamily, judge_family
from lab2.core.seeds import compare_seeds
from lab2.core.stats import compare_paired, equivalence_p
from lab2.core.verdicts import (
    NO_DIFFERENCE,
    TOO_CLOSE,
    call,
    caveat_notes,
    verdict_line,
)
from tests.helpers.grids import seed_cells

NAN_ROWS = (float("nan"), float("nan"))


@pytest.mark.parametrize(
    "shift, sd, n, margin",
    [(0.003, 0.005, 5, 0.02), (-0.01, 0.02, 12, 0.02), (0.0, 0.1, 3, 0.05), (0.05, 0.01, 10, 0.02)],
)
def test_the_equivalence_test_is_statsmodels_ttost_paired(shift, sd, n, margin):
    rng = np.random.default_rng(n)
    a = rng.normal(0.8, 0.05, n)
    b = a - shift + rng.normal(0, sd, n)
    assert equivalence_p(a - b, margin) == pytest.approx(ttost_paired(a, b, -margin, margin)[0])


def test_no_equivalence_test_without_a_margin_or_without_spread():
    assert np.isnan(equivalence_p(np.array([0.02, 0.02, 0.02]), 0.05))  # no t-test on sd 0
    assert np.isnan(equivalence_p(np.array([0.01, -0.02, 0.0]), 0.0))


def _close(n: int = 12, wobble: float = 0.003) -> dict[tuple[float, int], list[float]]:
    """Two groups within ±`wobble` of each other on every seed."""
    base = list(np.linspace(0.80, 0.90, n))
    return {
        (0.1, 10): base,
        (0.01, 10): list(np.array(base) + np.tile([wobble, -wobble * 0.7], n // 2)),
    }


def test_no_difference_worth_having_where_the_equivalence_test_holds_within_the_family():
    row = compare_seeds(seed_cells(_close()), min_effect=0.02).pairs.iloc[0]
    assert row["call"] == NO_DIFFERENCE and row["p_equivalence_holm"] <= 0.05
    assert row["verdict"] == (
        "lr=0.1 vs lr=0.01 at it=10: -0.0005 val acc, no difference worth having (within ±0.02)"
    )
    assert "equivalent within ±0.02" in row["reasoning"]


def test_the_equivalence_family_is_holm_over_every_comparison():
    rng = np.random.default_rng(3)
    comparisons = [
        compare_paired(x + rng.normal(0, s, 6), x)
        for x, s in ((np.linspace(0.7, 0.9, 6), s) for s in (0.004, 0.01, 0.02, 0.03))
    ]
    judged = judge_family(comparisons, 1.0, min_effect=0.02)
    raw = [equivalence_p(np.asarray(c.differences), 0.02) for c in comparisons]
    oracle = multipletests(raw, method="holm")[1]
    assert [j.p_equivalence for j in judged] == pytest.approx(raw)
    assert [j.p_equivalence_holm for j in judged] == pytest.approx(oracle)


def test_equivalent_alone_but_not_within_the_family_is_not_called_no_difference():
    # p_equivalence 0.03 alone: within a family of 4 comparisons Holm lifts it above 0.05
    c = compare_paired([0.81, 0.80, 0.79, 0.82], [0.80, 0.80, 0.80, 0.80])
    alone = InFamily(0.5, 4, 0.9875, -0.02, 0.03, p_equivalence=0.03, p_equivalence_holm=0.12)
    assert call(c, alone) == TOO_CLOSE
    held = InFamily(0.5, 4, 0.9875, -0.02, 0.03, p_equivalence=0.01, p_equivalence_holm=0.04)
    assert call(c, held) == NO_DIFFERENCE


def test_a_test_that_fails_to_reject_is_never_no_difference():
    # mean difference near 0, but the seeds spread widely: nothing is shown either way
    noisy = {(0.1, 10): [0.9, 0.6, 0.8, 0.7], (0.01, 10): [0.7, 0.8, 0.6, 0.9]}
    row = compare_seeds(seed_cells(noisy), min_effect=0.02).pairs.iloc[0]
    assert row["p_holm"] > 0.05 and row["call"] == TOO_CLOSE
    # one validation row better on every seed: no t-test, so no equivalence test either
    constant = {(0.1, 10): [0.82, 0.84, 0.86], (0.01, 10): [0.80, 0.82, 0.84]}
    row = compare_seeds(seed_cells(constant), min_effect=0.05).pairs.iloc[0]
    assert np.isnan(row["p_equivalence"]) and row["call"] == TOO_CLOSE
    assert row["caveats"] == "seed_floor;constant_difference"
    # without a smallest effect of interest there is no equivalence to test
    row = compare_seeds(seed_cells(_close()), min_effect=None).pairs.iloc[0]
    assert row["call"] != NO_DIFFERENCE


def test_clearly_better_needs_the_family_and_the_validation_rows_to_agree():
    c = compare_paired([0.9, 0.91, 0.92, 0.93, 0.9, 0.95], [0.8, 0.8, 0.81, 0.8, 0.82, 0.8])
    rejects = InFamily(0.001, 10, 0.995, 0.05, 0.15)
    assert call(c, rejects, rows=(0.02, 0.2)) == "clearly better"
    assert call(c, rejects) == "clearly better"  # no rows view (another metric, two runs)
    assert call(c, rejects, rows=(-0.01, 0.2)) == "better on these seeds"
    # losses: lower is better
    assert call(c, rejects, "val_loss") == "clearly worse"


def test_each_line_fits_100_columns_and_25_words_on_awkward_labels_and_counts():
    record = {
        "a": "lr=0.001 iterations=1000 hidden=24 scaling=std",
        "b": "lr=0.1 iterations=100 hidden=24 scaling=std",
        "metric": "train_accuracy",
        "n": 3,
        "mean_diff": -0.000731,
        "min_effect": 0.02,
        "call": TOO_CLOSE,
        "seeds_needed": 123456,
    }
    line = verdict_line(record)
    assert line == (
        "lr=0.001 it=1000 vs lr=0.1 it=100: -0.0007 train acc, too close to call "
        "(~1000+ seeds to settle)"
    )
    # a test that rejects on these seeds alone: few seeds would settle it
    worse = verdict_line({**record, "call": "worse on these seeds", "seeds_needed": 12})
    for said in (line, worse):
        assert len(said) <= 96 and len(said.split()) <= 25  # 4 columns left for "10. "
    # a count as a table row holds it (a numpy integer), or pandas' missing value
    assert verdict_line({**record, "seeds_needed": np.int64(27)}).endswith("(~27 seeds to settle)")
    assert verdict_line({**record, "seeds_needed": pd.NA}).endswith("too close to call")
    assert verdict_line({**record, "call": TOO_CLOSE, "seeds_needed": float("nan")}).endswith(
        "train acc, too close to call"
    )
    assert verdict_line({**record, "call": "too few seeds", "n": 1}).endswith(
        ": 1 shared seed, too few to compare"
    )


def test_each_caveat_is_said_once_naming_the_rows_it_concerns():
    records = [
        {"n": 3, "caveats": "seed_floor", "family": 4, "n_split_seeds": 1},
        {"n": 3, "caveats": "seed_floor;picked_on_these_seeds", "family": 4, "n_split_seeds": 1},
        {"n": 3, "caveats": "seed_floor;picked_on_these_seeds", "family": 4, "n_split_seeds": 1},
    ]
    assert caveat_notes(records, [1, 5, 9]) == [
        "With 3 seeds no distribution-free test can go below p = 0.25.",
        "Rows 5, 9: the best group was picked on these same seeds.",
    ]
    assert caveat_notes([{"n": 3, "caveats": float("nan")}]) == []  # a CSV's empty cell


def test_the_summary_is_at_most_six_lines_and_says_what_is_settled():
    lab_like = {
        (0.1, 100): [0.90, 0.74, 0.92],
        (0.01, 100): [0.70, 0.62, 0.72],
        (0.1, 1000): [0.94, 0.92, 0.92],
        (0.01, 1000): [0.90, 0.74, 0.92],
    }
    summary = results_summary(compare_seeds(seed_cells(lab_like), val_rows=50))
    lines = summary.splitlines()
    assert len(lines) <= 6
    assert lines[0].startswith("- **Best group: lr=0.1 iterations=1000**, val accuracy 0.927")
    assert lines[1] == "- Settled: none of the 5 comparisons."
    assert lines[2].startswith("- Not settled, 5 of 5 (") and "seeds would settle them" in lines[2]
    assert lines[3].startswith("- The lab's finding, a larger lr or more iterations raises")
    ten = {k: list(np.array(v * 4)[:10] + np.linspace(0, 0.01, 10)) for k, v in lab_like.items()}
    ten[(0.1, 1000)] = list(np.array(ten[(0.01, 100)]) + 0.25 + np.linspace(0, 0.02, 10))
    settled = results_summary(compare_seeds(seed_cells(ten), val_rows=50)).splitlines()
    assert settled[1].startswith("- Settled, ") and "clearly better" in settled[1]
    # one axis only: the lab's finding on lr and iterations does not apply
    one_axis = {k: v for k, v in lab_like.items() if k[1] == 100}
    assert "lab's finding" not in results_summary(compare_seeds(seed_cells(one_axis)))
