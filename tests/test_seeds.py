import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lab2.core.data import load_dataset
from lab2.core.describe import display_table, pairs_markdown, summary_notes
from lab2.core.errors import InputError
from lab2.core.family import InFamily, judge_family
from lab2.core.mlp import prepare_mlp_data, results_frame, train_cells
from lab2.core.pairs import PAIR_COLUMNS
from lab2.core.plots import plot_paired_differences, plot_score_distributions
from lab2.core.seeds import (
    best_group,
    compare_runs,
    compare_seeds,
    default_pairs,
    group_label,
    seed_summary,
    setup_differences,
)
from lab2.core.stats import compare_paired, rows_interval
from lab2.core.verdicts import bound, call, caveat_notes, caveats, reasoning, verdict_line
from lab2.tasks.outputs import seed_summary_html
from tests.helpers.grids import seed_cells

LAB_LIKE = {
    (0.1, 100): [0.90, 0.74, 0.92],
    (0.01, 100): [0.70, 0.62, 0.72],
    (0.001, 100): [0.16, 0.16, 0.48],
    (0.1, 1000): [0.94, 0.92, 0.92],
    (0.01, 1000): [0.90, 0.74, 0.92],
    (0.001, 1000): [0.70, 0.62, 0.72],
}


def test_summary_statistics_match_numpy_and_scipys_t_interval():
    values = [0.7, 0.9, 0.8, 0.95]
    row = seed_summary(seed_cells({(0.1, 100): values}), val_rows=50).iloc[0]
    assert row["val_accuracy_n"] == 4 and row["n_seeds"] == 4 and row["n_split_seeds"] == 1
    assert row["val_accuracy_mean"] == pytest.approx(np.mean(values))
    assert row["val_accuracy_std"] == pytest.approx(np.std(values, ddof=1))
    assert (row["val_accuracy_min"], row["val_accuracy_max"]) == (0.7, 0.95)
    t = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert (row["val_accuracy_ci95_low"], row["val_accuracy_ci95_high"]) == pytest.approx(
        (t[0], min(t[1], 1.0))
    )
    assert row["val_resolution"] == 0.02 and row["val_rows"] == 50
    assert row["val_accuracy_binomial_se"] == pytest.approx(math.sqrt(0.8375 * 0.1625 / 50))
    assert row["interval"].startswith("Student t interval") and "only 4 seeds" in row["warning"]
    assert row["dataset"] == "iris" and row["group"] == "lr=0.1 iterations=100"


def test_one_seed_has_no_interval():
    row = seed_summary(seed_cells({(0.1, 100): [0.8]})).iloc[0]
    assert (
        row["val_accuracy_n"] == 1
        and math.isnan(row["val_accuracy_ci95_low"])
        and math.isnan(row["val_resolution"])
    )


def test_default_pairs_are_axis_neighbours_and_the_best_against_every_other_once_each():
    summary = seed_summary(seed_cells(LAB_LIKE))
    pairs = default_pairs(summary)
    kinds = [kind for _, _, kind in pairs]
    assert kinds.count("neighbour lr") == 4 and kinds.count("neighbour iterations") == 3
    assert (
        "lr=0.01 iterations=100",
        "lr=0.001 iterations=100",
        "neighbour lr",
    ) in pairs  # larger value first
    assert ("lr=0.1 iterations=1000", "lr=0.1 iterations=100", "neighbour iterations") in pairs
    best = [(a, b) for a, b, kind in pairs if kind == "vs best"]
    assert all(a == "lr=0.1 iterations=1000" for a, _ in best)
    assert len({frozenset((a, b)) for a, b, _ in pairs}) == len(pairs) == 4 + 3 + 5 - 2


def test_pairs_table_matches_scipy_row_by_row_with_holm_over_the_table():
    comparison = compare_seeds(seed_cells(LAB_LIKE), val_rows=50)
    pairs = comparison.pairs
    assert list(pairs.columns) == PAIR_COLUMNS
    values = seed_cells(LAB_LIKE).set_index(["lr", "iterations", "seed"])["val_accuracy"]
    for row in pairs.itertuples():
        a = [values[(float(row.a.split()[0][3:]), int(row.a.split()[1][11:]), s)] for s in range(3)]
        b = [values[(float(row.b.split()[0][3:]), int(row.b.split()[1][11:]), s)] for s in range(3)]
        if a != b:
            assert row.p_t == pytest.approx(stats.ttest_rel(a, b).pvalue)
        assert row.mean_diff == pytest.approx(np.mean(np.subtract(a, b)))
        assert row.p_holm >= row.p_t
    ordered = np.sort(pairs["p_t"].to_numpy())
    assert pairs["p_holm"].min() == pytest.approx(min(1.0, len(pairs) * ordered[0]))
    assert len(comparison.paired) == 3 * len(pairs)


def test_the_lab_grid_lr_001_against_lr_0001_at_100_iterations():  # on one torch thread (conftest)
    data = prepare_mlp_data(load_dataset("iris"))
    cells = results_frame(
        train_cells(data, [(lr, s) for lr in (0.1, 0.01, 0.001) for s in (0, 1, 2)], [100, 1000])
    )
    pairs = compare_seeds(cells, val_rows=data.val_rows).pairs.set_index(["a", "b"])
    row = pairs.loc[("lr=0.01 iterations=100", "lr=0.001 iterations=100")]
    assert row["mean_diff"] == pytest.approx(0.4133, abs=1e-4)
    assert (row["ci_low"], row["ci_high"]) == (
        pytest.approx(0.03, abs=0.005),
        pytest.approx(0.80, abs=0.005),
    )
    assert row["p_t"] == pytest.approx(0.044, abs=5e-4)
    assert row["p_signflip"] == 0.25 and row["prob_improvement"] == 1.0
    assert row["caveats"] == "seed_floor" and "distribution-free" not in row["reasoning"]
    assert row["verdict"] == (
        "lr=0.01 vs lr=0.001 at it=100: +0.41 val acc, better on these seeds (~6 seeds to settle)"
    )
    assert row["reasoning"].startswith(
        "lr=0.01 ahead of lr=0.001 at iterations=100 by +0.413, not significant over 10"
    )

    # Named after seeing the table, the pair is still one of the grid's 10 comparisons: the same
    # verdict, and its p alone.
    (named,) = compare_seeds(
        cells, named=[("lr=0.001 iterations=100", "lr=0.01 iterations=100")]
    ).pairs.itertuples()
    assert (
        named.kind == "named"
        and named.p_holm == pytest.approx(row["p_holm"])
        and named.mean_diff == -row["mean_diff"]
    )
    assert named.reasoning.startswith(
        "lr=0.001 behind lr=0.01 at iterations=100 by -0.413, not significant over 10 comparisons"
    )
    assert named.reasoning.endswith(
        f"; alone, as if named before seeing the grid: p = {row['p_t']:.3g}"
    )


def test_pairs_are_matched_on_seed_and_split_seed():
    a = pd.concat([seed_cells({(0.1, 10): [0.9, 0.8, 0.7]}, split_seed=k) for k in (0, 1)])
    b = pd.concat(
        [
            seed_cells({(0.01, 10): [0.8, 0.8, 0.8]}, split_seed=0),
            seed_cells({(0.01, 10): [0.5, 0.5]}, split_seed=1),
        ]
    )
    comparison = compare_seeds(pd.concat([a, b], ignore_index=True))
    (row,) = comparison.pairs.itertuples()
    # Runs share init seeds and splits: the units are the 3 init seeds, each its mean over the
    # splits it has (seed 2 of split 1 has no partner), not 5 independent runs.
    per_seed_a, per_seed_b = (
        [np.mean([0.9, 0.9]), np.mean([0.8, 0.8]), 0.7],
        [np.mean([0.8, 0.5]), np.mean([0.8, 0.5]), 0.8],
    )
    assert (row.n, row.n_split_seeds) == (3, 2)
    assert row.mean_diff == pytest.approx(np.mean(np.subtract(per_seed_a, per_seed_b)))
    assert row.p_t == pytest.approx(stats.ttest_rel(per_seed_a, per_seed_b).pvalue)
    assert "init_seeds_over_splits" in row.caveats.split(";")
    assert caveat_notes([row._asdict()]) == [
        "With 3 seeds no distribution-free test can go below p = 0.25.",
        "The n column counts init seeds, each averaged over its 2 split seeds.",
    ]
    assert len(comparison.paired) == 5  # the figure still shows every matched run
    summary = comparison.summary.set_index("group")
    assert summary.loc["lr=0.1 iterations=10", "n_split_seeds"] == 2
    assert summary.loc["lr=0.1 iterations=10", "val_accuracy_sd_init"] == pytest.approx(0.1)
    assert summary.loc["lr=0.1 iterations=10", "val_accuracy_sd_split"] == pytest.approx(0.0)
    assert "val_sd_split" in display_table(comparison.summary).columns
    assert any("from the split seed" in note for note in summary_notes(comparison.summary))


def test_named_groups_must_match_exactly_one_group():
    summary_cells = seed_cells(LAB_LIKE)
    for a, message in [
        ("lr=0.01", "matches 2 groups"),
        ("lr=0.5 iterations=100", "matches no group"),
        ("learning_rate=0.1", "unknown key learning_rate"),
        ("lr0.1", "KEY=VALUE"),
        ("", "KEY=VALUE"),
    ]:
        with pytest.raises(InputError, match=message):
            compare_seeds(summary_cells, named=[(a, "lr=0.1 iterations=100")])
    pairs = compare_seeds(
        summary_cells, named=[("lr=1e-3 iterations=1000", "lr=0.001 it=100")]
    ).pairs  # it=: MLflow's label
    assert (pairs.loc[0, "a"], pairs.loc[0, "b"]) == (
        "lr=0.001 iterations=1000",
        "lr=0.001 iterations=100",
    )
    close = compare_seeds(
        seed_cells({(1.0000001, 10): [0.9, 0.8], (1.0000002, 10): [0.7, 0.8]})
    ).pairs
    assert (close.loc[0, "a"], close.loc[0, "b"]) == (
        "lr=1.0000002 iterations=10",
        "lr=1.0000001 iterations=10",
    )


def test_two_runs_are_compared_cell_by_cell_on_their_shared_seeds():
    a = seed_cells({(0.1, 10): [0.9, 0.8, 0.7], (0.01, 10): [0.5, 0.5, 0.5]})
    b = seed_cells({(0.1, 10): [0.1, 0.7, 0.6, 0.5], (0.2, 10): [0.5]}, dataset="iris-uci")
    pairs, paired = compare_runs(a, b)
    (row,) = pairs.itertuples()
    assert (row.a, row.b, row.n) == ("A lr=0.1 iterations=10", "B lr=0.1 iterations=10", 3)
    assert row.mean_diff == pytest.approx(np.mean([0.8, 0.1, 0.1]))
    assert row.reasoning.startswith("cannot tell A from B at lr=0.1 iterations=10")
    assert len(paired) == 3
    assert setup_differences(a, b) == {"dataset": ("iris", "iris-uci")}


def test_one_row_better_on_every_seed_is_not_called_proof():
    # k/50 accuracies, A one validation row ahead on every seed: the sd of the differences is float
    # noise (~1e-17).
    for n, floor in ((2, "0.5"), (3, "0.25")):
        b = [k / 50 for k in range(40, 40 + n)]
        row = compare_seeds(
            seed_cells({(0.1, 10): [x + 1 / 50 for x in b], (0.01, 10): b})
        ).pairs.loc[0]
        assert np.isnan(row["p_t"]) and row["p_holm"] == row["p_signflip"] == 2.0 ** (1 - n)
        assert row["reasoning"] == (
            f"lr=0.1 vs lr=0.01 at iterations=10: val_accuracy higher on every one of {n} "
            "seeds by exactly "
            f"0.020; no t-test: the difference does not vary; with {n} seeds no test can "
            "separate this from "
            f"chance below p = {floor}"
        )
    eight = compare_seeds(
        seed_cells({(0.1, 10): [0.9] * 8, (0.01, 10): [0.88] * 8}), metric="val_loss"
    ).pairs.loc[0, "reasoning"]
    assert eight.startswith(
        "lr=0.1 beats lr=0.01 at iterations=10: val_loss lower on every one of 8 seeds by "
        "exactly 0.02;"
    )
    assert eight.endswith("(sign-flip p = 0.00781)")  # 2 of 2^8 sign patterns


def test_loss_verdicts_call_lower_better():
    cells = seed_cells(
        {
            (0.1, 10): [0.95, 0.90, 0.93, 0.97, 0.91, 0.96],
            (0.01, 10): [0.70, 0.72, 0.69, 0.75, 0.68, 0.74],
        }
    )
    accuracy = compare_seeds(cells).pairs.loc[0, "reasoning"]
    # val_loss = 1 − accuracy here
    loss = compare_seeds(cells, metric="val_loss").pairs.loc[0, "reasoning"]
    assert (
        accuracy.startswith("lr=0.1 beats lr=0.01 at iterations=10 by +0.223")
        and "lr=0.1 higher on 6/6 seeds" in accuracy
    )
    assert (
        loss.startswith("lr=0.1 beats lr=0.01 at iterations=10 by -0.223")
        and "lr=0.1 lower on 6/6 seeds" in loss
    )


def test_an_adjusted_p_of_exactly_alpha_is_significant_as_holm_defines_it():
    c = compare_paired([0.9, 0.8, 0.85], [0.7, 0.72, 0.6])
    assert reasoning("lr=0.1", "lr=0.01", c, InFamily(0.05, 2, 0.975, 0.01, 0.3)).startswith(
        "lr=0.1 beats lr=0.01"
    )
    assert not reasoning(
        "lr=0.1", "lr=0.01", c, InFamily(0.0500001, 2, 0.975, -0.01, 0.3)
    ).startswith("lr=0.1 beats")


def _with_p(p: float, n: int = 5, sd: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Two groups whose paired differences have t-test p = `p`."""
    z = np.linspace(-1, 1, n)
    z = z / z.std(ddof=1)
    d = stats.t.isf(p / 2, n - 1) * sd / np.sqrt(n) + sd * z
    return 0.5 + d, np.full(n, 0.5)


def test_a_row_whose_family_interval_excludes_0_but_holm_stops_earlier_says_why():
    first, second = (compare_paired(*_with_p(p)) for p in (0.03, 0.04))
    one, two = judge_family([first, second], spread=1.0)
    assert (one.confidence, two.confidence) == (pytest.approx(0.975), pytest.approx(0.95))
    assert not one.significant and one.ci_low < 0 < one.ci_high
    # p = 0.04 ≤ 0.05 at its step, but the step before did not reject
    assert not two.significant and two.ci_low > 0
    said = reasoning("lr=0.1", "lr=0.01", second, two)
    assert said.startswith("lr=0.1 ahead of lr=0.01 by +") and "Holm-step 95% CI" in said
    assert caveats(second, two) == ("seed_floor", "holm_stopped_earlier")  # 5 seeds: p ≥ 0.0625
    assert call(second, two) == "better on these seeds"  # the test alone rejects, Holm does not


def test_each_rows_interval_is_scipys_t_interval_at_its_holm_step_and_agrees_with_its_verdict():
    data = prepare_mlp_data(load_dataset("iris"))
    cells = results_frame(
        train_cells(data, [(lr, s) for lr in (0.1, 0.01, 0.001) for s in range(5)], [100, 1000])
    )
    compared = compare_seeds(cells, val_rows=data.val_rows)
    table = compared.pairs.set_index(["a", "b"])
    # a difference that does not vary: its sign-flip p
    p = table["p_t"].fillna(table["p_signflip"]).to_numpy()
    steps = np.empty(len(p))
    # Holm's order, ties in table order
    steps[np.argsort(p, kind="stable")] = 1 - 0.05 / (len(p) - np.arange(len(p)))
    table["step"] = steps
    for (a, b), values in compared.paired.groupby(["a", "b"]):
        row = table.loc[(a, b)]
        assert row["family_confidence"] == pytest.approx(row["step"])
        oracle = stats.ttest_rel(values["value_a"], values["value_b"]).confidence_interval(
            row["family_confidence"]
        )
        # an accuracy difference lies in [-1, 1]
        clipped = np.clip([oracle.low, oracle.high], -1, 1)
        assert [row["family_ci_low"], row["family_ci_high"]] == pytest.approx(clipped)
        excludes = row["family_ci_low"] > 0 or row["family_ci_high"] < 0
        assert excludes == (row["p_holm"] <= 0.05) or "holm_stopped_earlier" in row["caveats"]
        # a settled call, never on an interval that includes 0
        assert excludes or not row["call"].startswith("clearly")
        if np.isfinite(
            row["p_t"]
        ):  # a difference that varies: its verdict quotes the interval at its step
            assert f"Holm-step {100 * row['family_confidence']:.4g}% CI" in row["reasoning"]


def test_verdicts_say_what_the_data_can_tell():
    same = compare_seeds(seed_cells({(0.1, 10): [0.9, 0.8], (0.01, 10): [0.9, 0.8]})).pairs.iloc[0]
    assert same["reasoning"] == (
        "lr=0.1 and lr=0.01 at iterations=10 give the same val_accuracy on all 2 seeds"
    )
    assert (
        verdict_line(same)
        == same["verdict"]
        == ("lr=0.1 vs lr=0.01 at it=10: the same val acc on all 2 seeds")
    )
    many = {
        (0.1, 10): list(np.linspace(0.80, 0.90, 12)),
        (0.01, 10): list(np.linspace(0.80, 0.90, 12) - 0.05 + np.tile([0.01, -0.01], 6)),
    }
    row = compare_seeds(seed_cells(many)).pairs.iloc[0]
    assert (
        row["reasoning"].startswith("lr=0.1 beats lr=0.01 at iterations=10 by +0.050")
        and "sign-flip p = 0.000488" in row["reasoning"]
    )
    close = {
        (0.1, 10): list(np.linspace(0.80, 0.90, 12)),
        (0.01, 10): list(np.linspace(0.80, 0.90, 12) + np.tile([0.002, -0.003], 6)),
    }
    assert "equivalent within ±0.02" in compare_seeds(seed_cells(close)).pairs.loc[0, "reasoning"]
    noisy = compare_seeds(
        seed_cells({(0.1, 10): [0.9, 0.7, 0.8], (0.01, 10): [0.8, 0.8, 0.78]})
    ).pairs.loc[0]
    assert noisy["reasoning"].startswith("cannot tell lr=0.1 from lr=0.01")
    assert noisy["reasoning"].endswith(
        f"if the true difference were +0.007, {noisy['seeds_needed_low']} to "
        f"{noisy['seeds_needed_high']} "
        f"seeds would detect it with 80% power at α = 0.05 (the range: the sd's 95% interval; "
        f"{noisy['seeds_needed']} at the sd seen)"
    )
    assert noisy["seeds_needed_low"] < noisy["seeds_needed"] < noisy["seeds_needed_high"]


def test_best_group_ties_go_to_fewer_iterations():
    summary = seed_summary(
        seed_cells({(0.1, 1000): [0.9, 0.9], (0.1, 100): [0.9, 0.9], (0.01, 100): [0.5, 0.6]})
    )
    best = best_group(summary)
    assert (best["lr"], best["iterations"]) == (0.1, 100)
    assert isinstance(best["iterations"], int)


def test_group_label_is_short_and_leaves_the_seeds_and_default_setup_out():
    params = {
        "lr": 0.1,
        "iterations": 100,
        "seed": 2,
        "dataset": "iris",
        "hidden": 12,
        "split_seed": 0,
        "scaling": "var",
        "protocol": "held-out",
    }
    assert group_label(params) == "lr=0.1 it=100"
    assert group_label({**params, "seed": 0, "split_seed": 1}) == group_label(params)
    assert (
        group_label({**params, "protocol": "seed-report", "hidden": "8"})
        == "lr=0.1 it=100 hidden=8 protocol=seed-report"
    )


def test_display_html_markdown_and_figure_name_the_groups():
    comparison = compare_seeds(seed_cells(LAB_LIKE), val_rows=50)
    assert list(display_table(comparison.summary)["val_accuracy"])[:2] == [
        "0.853 ± 0.099",
        "0.680 ± 0.053",
    ]
    assert "lr=0.1 iterations=1000" in seed_summary_html(
        comparison
    ) and "seed_pairs" not in seed_summary_html(comparison)
    markdown = pairs_markdown(comparison.pairs, limit=3)
    lines = markdown.splitlines()
    assert lines[0] == (
        "| # | A | B | n | A − B [Holm-step CI] | p_t | Holm p | P(A>B) | seeds to settle "
        "| verdict |"
    )
    assert lines[3].startswith(
        "| 2 | lr=0.01 it=100 | lr=0.001 it=100 | 3 | +0.413 [-0.381, +1.000] | 0.044 | 0.18 |"
    )
    assert lines[3].endswith("| 4–79 | better on these seeds |")
    assert lines[-1] == "7 more comparisons in `seed_pairs.csv`."
    # the caveat once, under the table
    assert markdown.count("no distribution-free test") == 1
    figure = plot_paired_differences(comparison.paired, comparison.pairs)
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert len(panels) == len(comparison.pairs) and all(len(ax.lines) == 3 for ax in panels)


def test_the_score_distribution_of_a_group_is_the_fraction_of_its_runs_above_each_threshold():
    cells = seed_cells({(0.1, 10): [0.9, 0.7, 0.8], (0.01, 10): [0.5, 0.6, 0.6]})
    (ax,) = plot_score_distributions(cells).axes
    curves = {line.get_label(): line for line in ax.lines}
    assert list(curves) == ["lr=0.1 it=10", "lr=0.01 it=10"]  # the best group first
    tau, share = curves["lr=0.01 it=10"].get_data()
    for t, fraction in zip(tau, share, strict=True):
        assert fraction == sum(v > t for v in (0.5, 0.6, 0.6)) / 3
    assert (
        plot_score_distributions(cells, limit=1)
        .axes[0]
        .get_title()
        .endswith("(the best 1 of 2 groups)")
    )


def _with_hits(cells: pd.DataFrame, rows: int = 50) -> pd.DataFrame:
    """Each cell's hits per validation row: its accuracy's worth of 1s, the first rows first."""
    return cells.assign(
        val_correct=[("1" * round(acc * rows)).ljust(rows, "0") for acc in cells["val_accuracy"]]
    )


def test_the_validation_rows_view_says_whether_a_call_survives_another_validation_set():
    # lr=0.1 is 0.1 ahead on every seed, on rows the other misses: a clear call that rows resampled
    # keep.
    clear = compare_seeds(
        _with_hits(
            seed_cells({(0.1, 100): [0.9, 0.92, 0.94, 0.9], (0.01, 100): [0.8, 0.8, 0.86, 0.82]})
        ),
        val_rows=50,
    )
    (row,) = clear.pairs.itertuples()
    assert 0 < row.rows_ci_low < row.mean_diff < row.rows_ci_high and "hits_a" not in clear.paired
    assert (
        "validation rows resampled: 95% CI" in row.reasoning
        and "the sign holds on another validation set" in row.reasoning
    )
    # 0.02 ahead on every seed: one row of 50, which another validation set of this size could
    # easily lose.
    close = compare_seeds(
        _with_hits(seed_cells({(0.1, 100): [0.9, 0.92, 0.94], (0.01, 100): [0.88, 0.9, 0.92]})),
        val_rows=50,
    )
    (row,) = close.pairs.itertuples()
    assert (
        row.rows_ci_low <= 0 < row.rows_ci_high
        and "another validation set of this size could erase it" in row.reasoning
    )
    # Cells without their rows (runs older than the tag), or a loss compared: no rows view, and no
    # words about it.
    for comparison in (
        compare_seeds(seed_cells({(0.1, 100): [0.9, 0.92], (0.01, 100): [0.8, 0.8]})),
        compare_seeds(
            _with_hits(seed_cells({(0.1, 100): [0.9, 0.92], (0.01, 100): [0.8, 0.8]})),
            metric="val_loss",
        ),
    ):
        (row,) = comparison.pairs.itertuples()
        assert math.isnan(row.rows_ci_low) and "validation rows" not in row.reasoning


@pytest.mark.parametrize(
    "value, shown",
    [
        (0.000095, "+0.00010"),
        (-0.0004, "-0.0004"),
        (0.0, "+0.000"),
        (0.12345, "+0.123"),
        (-1.0, "-1.000"),
    ],
)
def test_an_interval_end_that_is_not_zero_never_reads_as_zero(value, shown):
    assert bound(value) == shown
    # a loss is written to 3 significant digits already
    assert bound(0.000095, "val_loss") == "+9.5e-05"


def test_the_rows_view_over_split_seeds_resamples_each_splits_own_rows():
    rng = np.random.default_rng(3)
    hits = {
        (lr, seed, split): "".join(
            rng.choice(["0", "1"], 20, p=[0.2, 0.8] if lr == 0.1 else [0.4, 0.6])
        )
        for lr in (0.1, 0.01)
        for seed in range(3)
        for split in (0, 1)
    }
    cells = pd.concat(
        [seed_cells({(lr, 10): [0.5] * 3}, split_seed=k) for lr in (0.1, 0.01) for k in (0, 1)],
        ignore_index=True,
    )
    cells["val_correct"] = [hits[(r.lr, r.seed, r.split_seed)] for r in cells.itertuples()]
    cells["val_accuracy"] = cells["val_correct"].str.count("1") / 20
    (row,) = compare_seeds(cells).pairs.itertuples()
    by_hand = [
        np.array([[[int(h) for h in hits[(lr, s, k)]] for k in (0, 1)] for s in range(3)])
        for lr in (0.1, 0.01)
    ]
    assert (row.rows_ci_low, row.rows_ci_high) == rows_interval(*by_hand, row.family_confidence)
