"""Grids and cells constructed for the statistics and report tests."""

from __future__ import annotations

import pandas as pd


def seed_cells(
    values: dict[tuple[float, int], list[float]],
    dataset: str = "iris",
    split_seed: int | None = None,
) -> pd.DataFrame:
    rows = []
    for (lr, iterations), accuracies in values.items():
        for seed, acc in enumerate(accuracies):
            rows.append(
                {
                    "lr": lr,
                    "iterations": iterations,
                    "seed": seed,
                    "dataset": dataset,
                    "train_accuracy": acc,
                    "val_accuracy": acc,
                    "train_loss": 1 - acc,
                    "val_loss": 1 - acc,
                    "diverged": False,
                }
            )
    frame = pd.DataFrame(rows)
    return frame if split_seed is None else frame.assign(split_seed=split_seed)


LRS, ITERATIONS, SEEDS = (0.001, 0.01, 0.1), (100, 1000), (0, 1, 2)  # the lab's grid


def grid(train: float = 0.9, val: float = 0.8, **cells: tuple[float, float]) -> pd.DataFrame:
    """A lab grid whose accuracies rise with lr and iterations (train, val at the top cell), with
    some cells set: grid(c_0p1_100_s1=(train, val)) sets lr 0.1 × 100, seed 1."""
    rows = []
    for k, lr in enumerate(LRS):
        for j, iterations in enumerate(ITERATIONS):
            for seed in SEEDS:
                step = 0.1 * (len(LRS) - 1 - k) + 0.05 * (len(ITERATIONS) - 1 - j)
                t, v = cells.get(
                    f"c_{lr:g}_{iterations}_s{seed}".replace(".", "p"), (train - step, val - step)
                )
                rows.append(
                    {
                        "lr": lr,
                        "iterations": iterations,
                        "seed": seed,
                        "train_accuracy": t,
                        "val_accuracy": v,
                    }
                )
    return pd.DataFrame(rows)
