import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lab2core.seeds import (
    best_group,
    compare_seeds,
    compare_summaries,
    group_label,
    neighbour_overlaps,
    seed_summary,
    setup_differences,
)


def _cells(values: dict[tuple[float, int], list[float]], dataset: str = "iris") -> pd.DataFrame:
    rows = []
    for (lr, iterations), accuracies in values.items():
        for seed, acc in enumerate(accuracies):
            rows.append({"lr": lr, "iterations": iterations, "seed": seed, "dataset": dataset,
                         "train_accuracy": acc, "val_accuracy": acc, "train_loss": 1 - acc, "val_loss": 1 - acc,
                         "diverged": False})
    return pd.DataFrame(rows)


def test_summary_statistics_match_numpy_and_student_t():
    values = [0.7, 0.9, 0.8, 0.95]
    summary = seed_summary(_cells({(0.1, 100): values}))
    row = summary.iloc[0]
    mean, std = np.mean(values), np.std(values, ddof=1)
    half = stats.t.ppf(0.975, 3) * std / 2
    assert row["val_accuracy_n"] == 4
    assert row["val_accuracy_mean"] == pytest.approx(mean)
    assert row["val_accuracy_std"] == pytest.approx(std)
    assert (row["val_accuracy_min"], row["val_accuracy_max"]) == (0.7, 0.95)
    assert row["val_accuracy_ci95_low"] == pytest.approx(mean - half)
    assert row["val_accuracy_ci95_high"] == pytest.approx(mean + half)
    assert row["dataset"] == "iris"


def test_one_seed_has_no_interval():
    row = seed_summary(_cells({(0.1, 100): [0.8]})).iloc[0]
    assert row["val_accuracy_n"] == 1 and math.isnan(row["val_accuracy_ci95_low"])


def test_neighbour_verdicts_separate_real_differences_from_noise():
    cells = _cells({(0.001, 100): [0.30, 0.32, 0.31], (0.01, 100): [0.90, 0.91, 0.92], (0.1, 100): [0.5, 0.95, 0.7]})
    overlaps = neighbour_overlaps(seed_summary(cells)).set_index(["lr_low", "lr_high"])
    assert overlaps.loc[(0.001, 0.01), "verdict"] == "real difference"
    assert overlaps.loc[(0.01, 0.1), "verdict"] == "intervals overlap: not distinguishable"
    assert overlaps.loc[(0.001, 0.01), "val_accuracy_difference"] == pytest.approx(0.6)


def test_best_group_ties_go_to_fewer_iterations():
    summary = seed_summary(_cells({(0.1, 1000): [0.9, 0.9], (0.1, 100): [0.9, 0.9], (0.01, 100): [0.5, 0.6]}))
    best = best_group(summary)
    assert (best["lr"], best["iterations"]) == (0.1, 100)
    assert isinstance(best["iterations"], int)


def test_compare_two_runs_gives_the_difference_of_means():
    a = seed_summary(_cells({(0.1, 100): [0.8, 0.9]}))
    b = seed_summary(_cells({(0.1, 100): [0.9, 1.0]}, dataset="iris-uci"))
    joined = compare_summaries(a, b)
    assert joined.loc[0, "val_accuracy_mean_diff"] == pytest.approx(0.1)
    assert setup_differences(_cells({(0.1, 100): [0.8]}), _cells({(0.1, 100): [0.8]}, "iris-uci")) == {
        "dataset": ("iris", "iris-uci")
    }


def test_group_label_is_short_and_leaves_the_seed_and_default_setup_out():
    params = {"lr": 0.1, "iterations": 100, "seed": 2, "dataset": "iris", "hidden": 12, "split_seed": 0, "scaling": "var", "protocol": "held-out"}
    assert group_label(params) == "lr=0.1 it=100"
    assert group_label({**params, "seed": 0}) == group_label(params)
    assert group_label({**params, "protocol": "seed-report", "hidden": "8"}) == "lr=0.1 it=100 hidden=8 protocol=seed-report"


def test_display_and_html_name_the_best_group():
    comparison = compare_seeds(_cells({(0.1, 100): [0.8, 0.9], (0.01, 100): [0.5, 0.6]}))
    assert list(comparison.display()["val_accuracy"]) == ["0.850 ± 0.071", "0.550 ± 0.071"]
    assert "lr=0.1 iterations=100" in comparison.html()
