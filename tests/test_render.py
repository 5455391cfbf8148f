"""What `lab2` prints for a grid too large to show whole: constructed cases, on the fast tier."""

import re

import numpy as np

from lab2.cli import render
from lab2.core.seeds import compare_seeds
from tests.helpers.grids import seed_cells


def test_a_large_grid_shows_its_12_most_significant_neighbours_in_100_columns_caveat_once():
    rng = np.random.default_rng(0)
    grid = {
        (lr, it): list(np.clip(0.5 + 40 * lr * it / 1e4 + rng.normal(0, 0.05, 3), 0, 1).round(2))
        for lr in (0.1, 0.05, 0.02, 0.01)
        for it in (100, 200, 400, 800)
    }
    pairs = compare_seeds(seed_cells(grid), val_rows=50).pairs
    assert (pairs["kind"] != "vs best").sum() == 4 * 3 + 4 * 3 and len(
        pairs
    ) > 24  # neighbours, then the best against others
    shown = render.pairs(pairs)
    table = shown.split("\n  [low, high]")[0].splitlines()[1:]
    numbers = [int(line.split()[0]) for line in table]
    lines = re.findall(r"^ ?\d+\. (.*)$", shown, re.MULTILINE)
    assert len(numbers) == render.PAIRS_SHOWN == len(lines)
    assert all(len(line.split()) <= 25 for line in lines)
    neighbours = pairs.index[pairs["kind"] != "vs best"]
    # 24 neighbours: no best-against-other row makes the cut
    assert {n - 1 for n in numbers} <= set(neighbours)
    smallest = pairs.loc[neighbours, "p_holm"].nsmallest(render.PAIRS_SHOWN)
    assert pairs.loc[[n - 1 for n in numbers], "p_holm"].max() <= smallest.max()
    assert (
        f"Shown: the 12 of {len(pairs)} comparisons with the smallest Holm p, neighbours first"
        in " ".join(shown.split())
    )
    floor = "with 3 seeds no distribution-free test can go below p = 0.25"
    assert shown.count(floor.capitalize()) == 1 and floor not in shown
    assert max(map(len, shown.splitlines())) <= render.WIDTH


def test_history_lists_each_run_with_its_verdict_and_wraps_what_changed_within_100_columns():
    import pandas as pd

    from lab2.core.plots import plot_history

    runs = pd.DataFrame(
        [
            {
                "started": "2026-11-27 02:00",
                "run_id": "a" * 32,
                "verdict": "first",
                "best_val_accuracy": 0.927,
                "cause": "",
            },
            {
                "started": "2026-11-28 02:00",
                "run_id": "b" * 32,
                "verdict": "changed",
                "best_val_accuracy": 0.96,
                "cause": (
                    "data: digest aa06b8008ceba42e → 577a20e36e83e976, 50 of 150 rows changed; "
                    "recipe code: lab2core/mlp.py, lab2core/data.py"
                ),
            },
            {
                "started": "2026-11-28 09:00",
                "run_id": "c" * 32,
                "verdict": "",
                "best_val_accuracy": float("nan"),
                "cause": "",
            },
        ]
    )
    text = render.history(runs)
    lines = text.splitlines()
    assert lines[1] == f"2026-11-27 02:00  {'a' * 32}  first         0.927"
    assert lines[2] == f"2026-11-28 02:00  {'b' * 32}  changed       0.960"
    assert lines[3].startswith("    what went in differently: data: digest") and lines[
        4
    ].startswith("      ")
    # a run from before the watch
    assert lines[-1] == f"2026-11-28 09:00  {'c' * 32}  -             -"
    assert max(map(len, lines)) <= render.WIDTH
    figure = plot_history(runs)
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == [
        "first",
        "changed",
        "(not watched)",
    ]
