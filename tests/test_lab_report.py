"""The lab report written from what a run holds: its numbers are the run's, what it lacks is named,
its HTML stands alone."""

import re

import numpy as np
import pandas as pd
import pytest

from lab2.core.lab_report import (
    RunResults,
    lab_report,
    missing_numbers,
    report_html,
    same_time_cells,
)
from lab2.core.seeds import compare_seeds
from tests.helpers.grids import grid

FACTORISATION = pd.DataFrame(
    [
        {
            "matrix": "lab1-3x3",
            "gd_loss": 0.12191081,
            "svd_loss": 0.12191088,
            "principal_angle_1_deg": 1.2e-6,
            "principal_angle_2_deg": 0.0053,
            "u_column_angle_1_deg": 32.9,
            "u_column_angle_2_deg": 78.0,
        },
        {
            "matrix": "iris",
            "gd_loss": 15.2046650,
            "svd_loss": 15.2046443,
            "principal_angle_1_deg": 5.0e-5,
            "principal_angle_2_deg": 0.0469,
            "u_column_angle_1_deg": 46.2,
            "u_column_angle_2_deg": 23.7,
        },
    ]
)
PARAMS = {
    "dataset": "iris",
    "hidden": "12",
    "protocol": "held-out",
    "scaling": "var",
    "gd_lr": "0.01",
    "gd_epochs": "1000",
    "lrs": "0.1,0.01,0.001",
    "iterations": "100,1000",
    "seeds": "0,1,2",
    "best_lr": "0.1",
    "best_iterations": "1000",
    "best_seed": "0",
}


def lab_cells(**cells: tuple[float, float]) -> pd.DataFrame:
    """The lab's 18 cells (test_claims.grid) with losses."""
    frame = grid(**cells)
    return frame.assign(
        train_loss=1 - frame["train_accuracy"], val_loss=1 - frame["val_accuracy"], diverged=False
    )


def results(cells: pd.DataFrame | None = None, **changes) -> RunResults:
    cells = lab_cells() if cells is None else cells
    seeds = compare_seeds(cells.assign(split_seed=0), 50)
    tables = {
        "factorisation": FACTORISATION,
        "cells": cells,
        "seed_summary": seeds.summary,
        "seed_pairs": seeds.pairs,
    }
    fields = {
        "run_id": "r1",
        "run_url": "http://127.0.0.1:5000/#/experiments/1/runs/r1",
        "params": PARAMS,
        "tables": tables,
        "figures": {
            "u_scatter": "figures/u_scatter.png",
            "grid_summary": "figures/grid_summary.png",
        },
        "model_uri": "models:/m-1",
    } | changes
    return RunResults(**fields)


def test_the_report_shows_the_runs_numbers_beside_the_originals():
    report = lab_report(results())
    # the report's, then the run's, rounded
    assert "| GD loss, ‖A − UVᵀ‖² | 0.1224 | 0.1219 |" in report
    assert (
        "| GD loss | 15.2292 | 15.2047 |" in report
        and "| SVD loss (the rank-2 optimum) | 15.2288 | 15.2046 |" in report
    )
    assert "| GD − SVD | +0.0004 | +0.00002 |" in report
    assert "5e-05°, 0.047°: one plane" in report and "46°, 24° apart" in report
    assert (
        "![U from SVD and from GD](figures/u_scatter.png)" in report
        and "grid_summary.png" in report
    )
    assert "mean_learning_curves.png" not in report  # a figure the run does not hold is not linked
    assert "**Winner:** lr 0.1 × 1000 iterations (seed 0). Its model: `models:/m-1`." in report
    assert "[The run in MLflow](http://127.0.0.1:5000/#/experiments/1/runs/r1)" in report
    for section in (
        "## Q1_1",
        "## Q1_2",
        "## Q1_3",
        "## Q2_1",
        "## Q2_2",
        "## The original report's numbers beside lab2's",
        "## The original report's claims, checked",
        "## What the runs show that the report missed",
    ):
        assert report.count(section) == 1
    quotes = re.findall(r"^> (.+)$", report, re.MULTILINE)
    assert (
        len(quotes) == 9
        and "In every experiment, the accuracy when using the training data is much greater"
        in " ".join(quotes)
    )


def test_the_two_groups_claim_is_judged_on_the_u_rows_a_run_holds():
    assert (
        "Q1_3: **cannot be checked from the runs**. the run holds no U of the data"
        in lab_report(results())
    )
    rng = np.random.default_rng(1)
    svd = np.concatenate(
        [rng.normal(centre, 0.3, (20, 2)) for centre in ((-3, 0), (1, 0), (1.3, 0.1))]
    )
    gd = svd @ np.array([[0.5, 1.0], [-2.0, 0.3]])  # the same plane, turned and stretched
    u = pd.DataFrame(
        {
            "species": ["setosa"] * 20 + ["versicolor"] * 20 + ["virginica"] * 20,
            "svd_u1": svd[:, 0],
            "svd_u2": svd[:, 1],
            "gd_u1": gd[:, 0],
            "gd_u2": gd[:, 1],
        }
    )
    tables = {**results().tables, "u_rows": u}
    report = lab_report(results(tables=tables))
    assert (
        "Q1_3: **supported**. SVD: 2 groups: setosa | versicolor + virginica; GD: 2 groups"
        in report
    )


def test_the_report_says_whether_lab2s_gd_converged_from_its_gap_to_the_optimum():
    report = lab_report(results())
    assert "lab2's GD loss is 7e-08 from the optimum (float32 rounding): it converged." in report
    assert "lab2's GD loss is 2e-05 from the optimum (float32 rounding): it converged." in report
    # just past the float32 tolerance, and past 1%
    stopped = FACTORISATION.assign(gd_loss=FACTORISATION["svd_loss"] * 1.0002)
    report = lab_report(results(tables={**results().tables, "factorisation": stopped}))
    assert (
        "lab2's GD stops 2.438e-05 above the optimum (0.02%) after 1000 epochs at lr 0.01: within "
        "1% of it, short of the optimum itself."
    ) in report
    assert "it converged" not in report
    stopped = FACTORISATION.assign(gd_loss=FACTORISATION["svd_loss"] * 1.05)
    report = lab_report(results(tables={**results().tables, "factorisation": stopped}))
    assert (
        "lab2's GD stops 0.7602 above the optimum (5.00%) after 1000 epochs at lr 0.01: it has "
        "not converged."
    ) in report


def test_on_other_data_the_iris_claims_are_not_judged_and_a_diverged_gd_is_said():
    wine = FACTORISATION.assign(matrix=["lab1-3x3", "wine"])
    wine.loc[1, ["gd_loss", "principal_angle_1_deg", "principal_angle_2_deg"]] = np.nan
    wine = wine.assign(gd_lr=0.01, stable_lr=6e-5, optimum_gap=[0.0, np.nan])
    wine["gd"] = ["converged", "diverged"]
    report = lab_report(
        results(
            params=PARAMS | {"dataset": "data/wine.csv", "features": "13", "train_rows": "119"},
            tables={**results().tables, "factorisation": wine},
        )
    )
    assert "on the centred `wine` data" in report
    assert "GD diverged on wine at lr 0.01 (loss not finite)" in report
    assert "0.25/σ₁ = 6e-05 would converge: --gd-lr auto" in report
    assert "no angles between the two U" in report
    assert "This run is on `wine`, not Iris: 8 of the report's 9 claims are about Iris" in report
    assert report.count("**not judged on this data**") == 8
    assert "**supported**" not in report and "**contradicted**" not in report
    assert "13 features → 12 ReLU units → 3 logits" in report and "119 training rows" in report


def test_q1_1_shows_the_matrix_and_each_reconstruction_row_by_row():
    assert "The run holds no reconstruction of the matrix" in lab_report(results())
    a = np.array([[0.3374, 0.6005, 0.1735], [3.3359, 0.0492, 1.8374], [2.9407, 0.5301, 2.2620]])
    svd = a - 0.01
    gd = svd + np.array([[0, 0, 0], [0, 0, 0], [0, 0, 3e-5]])
    entries = pd.DataFrame(
        [
            {"row": i, "column": j, "a": a[i, j], "gd": gd[i, j], "svd": svd[i, j]}
            for i in range(3)
            for j in range(3)
        ]
    )
    report = lab_report(
        results(
            tables={
                **results().tables,
                "reconstruction": entries.sample(frac=1, random_state=0),
            }
        )
    )
    # the report's Figure 2, then the run's GD and SVD reconstructions, rounded for reading
    assert (
        "| 1 | 0.3374, 0.6005, 0.1735 | 0.2193, 0.5037, 0.3697 | 0.3274, 0.5905, 0.1635 | "
        "0.3274, 0.5905, 0.1635 |"
    ) in report
    assert (
        "| 3 | 2.9407, 0.5301, 2.2620 | 3.0304, 0.6037, 2.1129 | 2.9307, 0.5201, 2.2520 | "
        "2.9307, 0.5201, 2.2520 |"
    ) in report
    assert (
        "lab2's GD reconstruction is within 3e-05 of the optimum's in every entry; the "
        "report's, within 0.21."
    ) in report


def test_a_run_under_the_reports_protocol_judges_the_grid_claims_as_seed_report_runs():
    report = lab_report(results(params={**PARAMS, "protocol": "seed-report"}))
    claims = report[
        report.index("## The original report's claims, checked") : report.index(
            "## What the runs show"
        )
    ]
    assert "held-out runs" not in claims and "seed-report runs: " in claims
    # no held-out runs: a grid claim holds only under the report's protocol
    assert "**supported**" not in claims.split("Q2_2", 1)[1]


def test_what_a_run_lacks_is_named():
    assert missing_numbers(results()) == []
    small = lab_cells()[lambda c: c["lr"] != 0.001]
    lacking = results(
        small,
        params={k: v for k, v in PARAMS.items() if k != "best_lr"},
        tables={
            "factorisation": FACTORISATION[FACTORISATION["matrix"] == "iris"],
            "cells": small,
        },
    )
    assert missing_numbers(lacking) == [
        "the seed summary",
        "the paired comparisons",
        "the param best_lr",
        "Q1's loss of the lab's matrix lab1-3x3",
        "the cell lr 0.001 × 1000 iterations",
        "the cell lr 0.001 × 100 iterations",
    ]
    whole = results()
    # a run from before verdicts were records: its pair table has sentences, not calls
    before = whole.tables | {"seed_pairs": whole.tables["seed_pairs"].drop(columns="call")}
    assert missing_numbers(results(tables=before)) == [
        "the paired comparisons' calls (the run predates them)"
    ]


def test_groups_of_equal_lr_times_iterations_are_paired_seed_by_seed():
    cells = lab_cells()
    same = same_time_cells(cells)
    assert sorted(zip(same["lr_a"], same["it_a"], same["lr_b"], same["it_b"], strict=True)) == [
        (0.01, 100, 0.001, 1000),
        (0.1, 100, 0.01, 1000),
    ]
    # lab_cells() steps accuracies by lr and iterations: lr 0.1 × 100 is 0.05 above lr 0.01 × 1000
    # in every cell
    assert same.set_index(["lr_a", "it_a"]).loc[(0.1, 100), "largest"] == pytest.approx(
        0.05, abs=1e-9
    )
    moved = cells.copy()
    moved.loc[
        (moved["lr"] == 0.01) & (moved["iterations"] == 1000) & (moved["seed"] == 2), "val_accuracy"
    ] += 0.3
    assert same_time_cells(moved).set_index(["lr_a", "it_a"]).loc[
        (0.1, 100), "largest"
    ] == pytest.approx(0.25, abs=1e-9)  # 0.05 − 0.3


def test_the_html_embeds_its_figures_and_links_nothing_outside():
    markdown = lab_report(results())
    html = report_html(
        markdown, {"figures/u_scatter.png": b"\x89PNG-u", "figures/grid_summary.png": b"\x89PNG-g"}
    )
    assert html.count('src="data:image/png;base64,') == 2 and 'src="figures/' not in html
    assert "<table>" in html and "<blockquote>" in html and "@media print" in html
