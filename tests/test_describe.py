"""Run names and descriptions as pure functions: what a person reads first in the MLflow UI."""

import numpy as np
import pandas as pd
import pytest
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from lab2.core.describe import (
    cell_description,
    cell_run_name,
    factorisation_description,
    factorisation_run_name,
    grid_sentence,
    pipeline_description,
    seed_table_markdown,
)
from lab2.core.seeds import compare_seeds

# MLflow's runs table shows about 18 characters of a name at its default width.
DEFAULT_NAME_WIDTH = 18


def seed_cells() -> pd.DataFrame:
    values = {
        (0.1, 100): [0.8, 0.9, 0.85],
        (0.01, 100): [0.5, 0.6, 0.7],
        (0.1, 1000): [0.9, 0.95, 0.92],
    }
    return pd.DataFrame(
        [
            {
                "lr": lr,
                "iterations": it,
                "seed": seed,
                "dataset": "iris",
                "train_accuracy": acc,
                "val_accuracy": acc,
                "train_loss": 1 - acc,
                "val_loss": 1 - acc,
                "diverged": False,
            }
            for (lr, it), accuracies in values.items()
            for seed, acc in enumerate(accuracies)
        ]
    )


def test_cell_names_fit_the_default_column_and_tell_every_cell_apart():
    names = {
        cell_run_name(lr, it, seed)
        for lr in (0.1, 0.01, 0.001)
        for it in (100, 1000)
        for seed in (0, 1, 2)
    }
    assert len(names) == 18
    assert max(map(len, names)) <= DEFAULT_NAME_WIDTH
    assert cell_run_name(0.001, 1000, 2) == "lr0.001·it1000·s2"
    assert factorisation_run_name("gd-factorise", "iris") == "gd iris"
    assert factorisation_run_name("svd-baseline", "lab1-3x3") == "svd lab1-3x3"


def test_one_line_descriptions_of_children():
    assert cell_description(0.1, 100, 2, 0.92, 0.971, False) == (
        "MLP cell lr 0.1, 100 full-batch steps, init seed 2: validation accuracy 92.0%, "
        "training 97.1%."
    )
    assert "**diverged**" in cell_description(10.0, 30, 0, float("nan"), float("nan"), True)
    assert factorisation_description("svd-baseline", "iris", 2, 15.20464) == (
        "Rank-2 factorisation of `iris` by truncated SVD (the optimum): loss ‖A − UVᵀ‖²_F = 15.205."
    )


def test_the_seed_table_holds_each_groups_mean_and_sd_and_marks_the_best():
    cells = seed_cells()
    table = seed_table_markdown(compare_seeds(cells)).splitlines()
    assert table[0].startswith("| lr | iterations | seeds |") and len(table) == 2 + 3
    # the oracle: pandas, ddof=1
    stats = cells.groupby(["lr", "iterations"])["val_accuracy"].agg(["mean", "std"])
    for (lr, it), row in stats.iterrows():
        line = next(t for t in table if t.replace("*", "").startswith(f"| {lr:g} | {it} |"))
        assert f"{row['mean']:.3f} ± {row['std']:.3f}" in line
    (best,) = [t for t in table if t.startswith("| **")]
    assert best.startswith("| **0.1** | **1000** |")


def test_the_parent_description_says_what_ran_the_best_group_and_links_runs():
    seeds = compare_seeds(seed_cells())
    text = pipeline_description(
        [grid_sentence((0.1, 0.01), (100, 1000), (0, 1, 2), {"dataset": "iris"})],
        seeds,
        None,
        "http://127.0.0.1:4200/runs/flow-run/abc",
        [("lr0.1·it100·s0", "#/experiments/1/runs/r1?workflowType=machine_learning")],
        ("lr0.1·it1000·s0", "#/experiments/1/runs/r2?workflowType=machine_learning"),
    )
    assert (
        "lr ∈ {0.1, 0.01} × iterations ∈ {100, 1000} × seeds {0, 1, 2} (12 `mlp` runs; "
        "dataset iris)"
    ) in text
    assert text.startswith(
        "- **Best group: lr=0.1 iterations=1000**, val accuracy 0.923 (95% interval 0.861–0.986 "
        "over 3 seeds); the model `lab2-mlp` is its run "
        "[lr0.1·it1000·s0](#/experiments/1/runs/r2?workflowType=machine_learning)."
    )
    assert "[lr0.1·it1000·s0](#/experiments/1/runs/r2?workflowType=machine_learning)" in text
    assert (
        "[http://127.0.0.1:4200/runs/flow-run/abc](http://127.0.0.1:4200/runs/flow-run/abc)" in text
    )
    assert (
        "Reused from earlier runs (1): "
        "[lr0.1·it100·s0](#/experiments/1/runs/r1?workflowType=machine_learning)"
    ) in text
    assert "Group by → Tags → `lab2.group`" in text


def test_without_a_prefect_server_the_description_says_so():
    text = pipeline_description(
        ["Q1."],
        factorisation=pd.DataFrame([{"matrix": "iris", "gd_loss": 15.2047, "svd_loss": 15.2046}]),
    )
    assert "| `iris` | 15.205 | 15.205 |" in text
    assert "none kept (run under Prefect's temporary local API)" in text
    assert "Best group" not in text


@pytest.mark.parametrize("lr", [10.0, 1e-4])
def test_names_of_extreme_learning_rates_stay_short(lr):
    assert len(cell_run_name(lr, 1000, 9)) <= DEFAULT_NAME_WIDTH


def test_the_description_shows_the_paired_verdicts():
    cells = pd.DataFrame(
        [
            {
                "lr": lr,
                "iterations": 100,
                "seed": s,
                "train_accuracy": a,
                "val_accuracy": a,
                "train_loss": 1 - a,
                "val_loss": 1 - a,
                "diverged": False,
            }
            for lr, values in {0.1: [0.9, 0.8, 0.85], 0.01: [0.5, 0.6, 0.4]}.items()
            for s, a in enumerate(values)
        ]
    )
    text = pipeline_description(["Q2."], compare_seeds(cells, val_rows=50))
    assert (
        "Paired comparisons of val accuracy" in text
        and "| 1 | lr=0.1 it=100 | lr=0.01 it=100 | 3 |" in text
    )


def test_a_sweeps_description_fits_one_mlflow_tag_and_shows_its_best_groups():
    rng = np.random.default_rng(0)
    lrs, iterations = [0.001 * 2**k for k in range(10)], list(range(100, 1001, 100))
    cells = pd.DataFrame(
        [
            {
                "lr": lr,
                "iterations": it,
                "seed": seed,
                "dataset": "iris",
                "train_accuracy": acc,
                "val_accuracy": acc,
                "train_loss": 1 - acc,
                "val_loss": 1 - acc,
                "diverged": False,
            }
            for lr in lrs
            for it in iterations
            for seed in range(10)
            for acc in [float(rng.uniform(0.3, 1.0))]
        ]
    )
    seeds = compare_seeds(cells, 50)
    reused = [
        (f"cell {k}", f"http://127.0.0.1:5000/#/experiments/1/runs/{k:032x}") for k in range(1000)
    ]
    text = pipeline_description(["a 1,000-cell sweep."], seeds, None, None, reused)
    assert len(text) <= MAX_TAG_VAL_LENGTH
    table = seed_table_markdown(seeds)
    assert "The 12 best of 100 groups" in table and "seed_summary.csv" in table
    shown_means = [
        float(line.split("|")[4].split("±")[0].strip(" *"))
        for line in table.splitlines()
        if line.startswith("| ") and "lr |" not in line
    ]
    assert shown_means == sorted(seeds.summary["val_accuracy_mean"].round(3), reverse=True)[:12]
    assert "and 976 more (every unit in `units/`)" in text


def test_a_reruns_description_keeps_the_results_and_says_how_it_ran():
    from lab2.core.describe import HOW_IT_RAN, how_it_ran, results_part

    earlier = pipeline_description(
        ["Q1."],
        factorisation=pd.DataFrame([{"matrix": "iris", "gd_loss": 15.2047, "svd_loss": 15.2046}]),
    )
    results = results_part(earlier)
    assert (
        "| `iris` | 15.205 | 15.205 |" in results
        and HOW_IT_RAN not in results
        and "Prefect" not in results
    )
    text = how_it_ran(
        None, [("gd iris", "#/experiments/1/runs/r1")], ("p0", "#/experiments/1/runs/p0")
    )
    assert (
        text.startswith(HOW_IT_RAN)
        and "Nothing was computed" in text
        and "[p0](#/experiments/1/runs/p0)" in text
    )
    assert (
        "Reused from earlier runs (1): [gd iris](#/experiments/1/runs/r1)" in text
        and "none kept" not in text
    )
