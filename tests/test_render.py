"""What `lab2` prints for a grid too large to show whole: constructed cases, on the fast tier."""

import re

import numpy as np

from lab2.cli import render
from lab2.core.seeds import compare_seeds
from tests.test_seeds import _cells


def test_a_large_grid_shows_its_12_most_significant_neighbours_in_100_columns_with_the_caveat_once():
    rng = np.random.default_rng(0)
    grid = {(lr, it): list(np.clip(0.5 + 40 * lr * it / 1e4 + rng.normal(0, 0.05, 3), 0, 1).round(2))
            for lr in (0.1, 0.05, 0.02, 0.01) for it in (100, 200, 400, 800)}
    pairs = compare_seeds(_cells(grid), val_rows=50).pairs
    assert (pairs["kind"] != "vs best").sum() == 4 * 3 + 4 * 3 and len(pairs) > 24  # neighbours, then the best against others
    shown = render.pairs(pairs)
    table = shown.split("\n  [low, high]")[0].splitlines()[1:]
    numbers = [int(line.split()[0]) for line in table]
    assert len(numbers) == render.PAIRS_SHOWN == len(re.findall(r"^  \d+\. ", shown, re.MULTILINE))
    neighbours = pairs.index[pairs["kind"] != "vs best"]
    assert {n - 1 for n in numbers} <= set(neighbours)  # 24 neighbours: no best-against-other row makes the cut
    smallest = pairs.loc[neighbours, "p_holm"].nsmallest(render.PAIRS_SHOWN)
    assert pairs.loc[[n - 1 for n in numbers], "p_holm"].max() <= smallest.max()
    assert f"Shown: the 12 of {len(pairs)} comparisons with the smallest Holm p, neighbours first" in " ".join(shown.split())
    floor = "with 3 seeds no distribution-free test can go below p = 0.25"
    assert shown.count(floor.capitalize()) == 1 and floor not in shown
    assert max(map(len, shown.splitlines())) <= render.WIDTH
