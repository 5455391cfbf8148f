"""Since the last run: the causes named from two runs' inputs, and each unit computed again judged
against its last run, on constructed cases (ties, float rounding and seed noise first)."""

import numpy as np
import pandas as pd

from lab2.core.watch import (
    CHANGED,
    IDENTICAL,
    UNCHANGED,
    WITHIN_NOISE,
    Inputs,
    SinceLastRun,
    UnitChange,
    compare_factorisation,
    compare_grid,
    input_changes,
    row_digests,
    since_last_run_markdown,
)

SEEDS = (0, 1, 2)
INPUTS = Inputs(
    code={"lab2core/mlp.py": "aaa", "lab2core/data.py": "bbb"},
    data="d1",
    rows=["r1", "r2", "r3"],
    environment={"torch": "2.13.0", "numpy": "2.1.0", "torch_threads": "1"},
)


def cells(shift: dict[tuple[float, int], list[float]] | None = None, seeds=SEEDS) -> pd.DataFrame:
    """A 2 × 2 grid over `seeds`; `shift` adds to a cell's val accuracy, seed by seed."""
    rows = []
    for lr in (0.1, 0.01):
        for iterations in (100, 1000):
            for k, seed in enumerate(seeds):
                val = (
                    0.6
                    + lr
                    + iterations / 10_000
                    + 0.01 * seed
                    + (shift or {}).get((lr, iterations), [0.0] * len(seeds))[k]
                )
                rows.append(
                    {
                        "lr": lr,
                        "iterations": iterations,
                        "seed": seed,
                        "split_seed": 0,
                        "train_accuracy": 0.9,
                        "val_accuracy": val,
                        "train_loss": 0.3,
                        "val_loss": 0.4,
                    }
                )
    return pd.DataFrame(rows)


def keys(frame: pd.DataFrame) -> list[tuple]:
    return list(
        frame[["lr", "iterations", "seed", "split_seed"]].itertuples(index=False, name=None)
    )


def test_the_same_inputs_have_no_cause_and_each_change_is_named():
    assert input_changes(INPUTS, INPUTS) == []
    edited = Inputs(
        {**INPUTS.code, "lab2core/mlp.py": "zzz"},
        "d2",
        ["r1", "x2", "r3", "r4"],
        {**INPUTS.environment, "torch": "2.14.0"},
    )
    assert input_changes(INPUTS, edited) == [
        "recipe code: lab2core/mlp.py",
        "data: digest d1 → d2, 2 of 4 rows changed",  # one row edited, one added
        "environment: torch 2.13.0 → 2.14.0",
    ]
    assert Inputs.from_json(edited.to_json()) == edited


def test_row_digests_tell_an_edited_row_from_the_rest():
    features, labels = np.array([[5.1, 3.5], [4.9, 3.0], [4.7, 3.2]]), np.array([0, 0, 1])
    digests = row_digests(features, labels)
    edited = row_digests(np.array([[5.1, 3.5], [4.9, 3.1], [4.7, 3.2]]), labels)
    relabelled = row_digests(features, np.array([0, 0, 2]))
    assert len(set(digests)) == 3 and [a == b for a, b in zip(digests, edited, strict=True)] == [
        True,
        False,
        True,
    ]
    assert [a == b for a, b in zip(digests, relabelled, strict=True)] == [True, True, False]


def test_a_grid_computed_again_is_identical_bit_for_bit_and_diverged_cells_count_as_equal():
    before = cells()
    before.loc[0, "val_loss"] = np.nan  # a diverged cell: NaN both times
    (change,) = compare_grid(before, before.copy(), keys(before))
    assert change.verdict == IDENTICAL and change.evidence == "12 cells, largest difference 0"


def test_float_rounding_is_within_noise_and_past_it_the_seeds_judge():
    before = cells()
    rounded = before.assign(val_loss=before["val_loss"] * (1 + 5e-7))
    assert compare_grid(before, rounded, keys(before))[0].verdict == WITHIN_NOISE
    # up one seed, down another
    noisy = cells({(0.1, 100): [0.02, -0.02, 0.0], (0.01, 1000): [-0.02, 0.0, 0.02]})
    (change,) = compare_grid(before, noisy, keys(before))
    assert (
        change.verdict == WITHIN_NOISE
        and "no cell's val accuracy moved beyond its seeds' noise" in change.evidence
    )


def test_a_consistent_shift_beyond_seed_noise_is_changed_and_named():
    before = cells()
    shifted = cells({(0.1, 1000): [-0.30, -0.31, -0.29]})
    (change,) = compare_grid(before, shifted, keys(before))
    assert change.verdict == CHANGED
    assert change.evidence.startswith(
        "1 of 4 cells moved: lr=0.1 iterations=1000: val accuracy -0.300 (n=3, Holm p="
    )


def test_with_one_seed_any_difference_past_rounding_is_changed():
    before = cells(seeds=(0,))
    after = cells({(0.01, 100): [0.02]}, seeds=(0,))
    assert compare_grid(before, after, keys(before))[0].verdict == CHANGED


def test_only_the_cells_asked_for_are_compared():
    before, shifted = cells(), cells({(0.1, 1000): [-0.30, -0.31, -0.29]})
    others = [k for k in keys(before) if k[:2] != (0.1, 1000)]
    assert compare_grid(before, shifted, others)[0].verdict == IDENTICAL
    assert compare_grid(before, shifted, []) == []


def test_a_factorisation_is_judged_on_its_losses():
    before = pd.DataFrame(
        [
            {"matrix": "lab1-3x3", "gd_loss": 0.1219108, "svd_loss": 0.1219108},
            {"matrix": "iris", "gd_loss": 15.20467, "svd_loss": 15.20464},
        ]
    )
    same = compare_factorisation(before, before.copy(), ["lab1-3x3", "iris"])
    assert [c.verdict for c in same] == [IDENTICAL, IDENTICAL]
    moved = before.assign(gd_loss=[0.1219108 * (1 + 1e-7), 15.9])
    assert [c.verdict for c in compare_factorisation(before, moved, ["lab1-3x3", "iris"])] == [
        WITHIN_NOISE,
        CHANGED,
    ]
    assert compare_factorisation(before, moved, ["lab1-3x3"])[0].what == "Q1 lab1-3x3"


def test_a_runs_verdict_is_its_worst_units_and_unchanged_when_nothing_was_computed():
    assert SinceLastRun("p", new_units=0).verdict == UNCHANGED
    assert SinceLastRun("p", units=[], new_units=2).verdict == IDENTICAL
    units = [
        UnitChange("Q1 iris", IDENTICAL, ""),
        UnitChange("Q2 grid", WITHIN_NOISE, ""),
        UnitChange("Q1 lab1-3x3", IDENTICAL, ""),
    ]
    assert SinceLastRun("p", units=units, new_units=3).verdict == WITHIN_NOISE
    assert (
        SinceLastRun("p", units=[*units, UnitChange("Q2 grid", CHANGED, "")], new_units=4).verdict
        == CHANGED
    )


def test_the_section_says_the_verdict_the_run_it_is_against_and_why():
    first = since_last_run_markdown(SinceLastRun(None))
    assert first.startswith("### Since the last run\n\nThe first run with these parameters")
    since = SinceLastRun(
        "abc",
        ["data: digest d1 → d2, 3 of 150 rows changed"],
        [UnitChange("Q2 grid", CHANGED, "1 of 6 cells moved")],
        22,
        "http://mlflow/#/experiments/1/runs/abc",
    )
    text = since_last_run_markdown(since)
    assert text.startswith(
        "### Since the last run: **changed**\n\n"
        "Against run [abc](http://mlflow/#/experiments/1/runs/abc)"
    )
    assert (
        "What went in differently: data: digest d1 → d2, 3 of 150 rows changed." in text
        and "- Q2 grid: **changed**. 1 of 6" in text
    )
    reused = since_last_run_markdown(SinceLastRun("abc", [], [], 0))
    assert (
        "**unchanged**" in reused
        and "nothing (the same code, data and environment)" in reused
        and "Every unit is the last run's" in reused
    )
