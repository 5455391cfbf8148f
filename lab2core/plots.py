"""Figures of the lab, returned as matplotlib Figures (the caller saves or logs and closes them)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from lab2core.mlp import CellResult


def plot_u_scatter(
    u_svd: torch.Tensor, u_gd: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]
) -> Figure:
    """Q1_3: the first two columns of U, SVD beside GD, one colour per class."""
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, u, title in zip(axes, (u_svd, u_gd), ("truncated SVD", "gradient descent")):
        for k, name in enumerate(class_names):
            rows = (labels == k).numpy()
            ax.scatter(u[rows, 0].numpy(), _second_column(u)[rows].numpy(), s=14, label=name)
        ax.set(title=f"U from {title}", xlabel="U[:, 0]", ylabel="U[:, 1]" if u.shape[1] > 1 else "(rank 1)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
    axes[0].legend(title="species")
    return fig


def _second_column(u: torch.Tensor) -> torch.Tensor:
    return u[:, 1] if u.shape[1] > 1 else torch.zeros(len(u), dtype=u.dtype)


def plot_learning_curve(cell: CellResult) -> Figure:
    """Training loss per step of one MLP cell, with its final accuracies in the title."""
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(np.arange(1, len(cell.train_loss_history) + 1), cell.train_loss_history)
    ax.set(
        xlabel="step",
        ylabel="training loss (cross-entropy)",
        title=f"lr={cell.lr:g} seed={cell.seed}: train {cell.train_accuracy:.0%}, val {cell.val_accuracy:.0%}",
    )
    ax.set_yscale("log")
    return fig


def plot_grid_summary(cells: pd.DataFrame) -> Figure:
    """Q2_2: train and validation accuracy against lr, one line per iteration count, each seed a dot."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric in zip(axes, ("train_accuracy", "val_accuracy")):
        for iterations, group in cells.groupby("iterations"):
            means = group.groupby("lr")[metric].mean()
            (line,) = ax.plot(means.index, means.values, marker="o", label=f"{iterations} iterations")
            ax.scatter(group["lr"], group[metric], color=line.get_color(), s=10, alpha=0.5)
        ax.set(xscale="log", xlabel="learning rate", title=metric.replace("_", " "), ylim=(0, 1.05))
    axes[0].set_ylabel("accuracy (mean line, seeds as dots)")
    axes[0].legend()
    return fig
