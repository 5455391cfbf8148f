"""Figures of the lab, returned as matplotlib Figures (the caller saves or logs and closes them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter

from lab2.core.verdicts import contrast_labels


def plot_u_scatter(
    u_svd: np.ndarray,
    u_gd: np.ndarray | None,
    labels: np.ndarray,
    class_names: Sequence[str],
    label_name: str = "species",
) -> Figure:
    """Q1_3: the first two columns of U, SVD beside GD, one colour per class (a GD that diverged
    has no U: its panel says so)."""
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    axes = fig.subplots(1, 2)
    colours = _class_colours(len(class_names))
    for ax, u, title in zip(
        axes, (u_svd, u_gd), ("truncated SVD", "gradient descent"), strict=False
    ):
        ax.set(
            title=f"U from {title}",
            xlabel="U[:, 0]",
            ylabel="U[:, 1]" if u_svd.shape[1] > 1 else "(rank 1)",
        )
        if u is None:
            ax.text(0.5, 0.5, "diverged: loss not finite", ha="center", transform=ax.transAxes)
            ax.set(xticks=[], yticks=[])
            continue
        for k, name in enumerate(class_names):
            rows = labels == k
            ax.scatter(u[rows, 0], _second_column(u)[rows], s=14, label=name, color=colours[k])
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
    axes[0].legend(title=label_name, fontsize="small", ncols=1 + len(class_names) // 11)
    return fig


def _class_colours(n: int) -> list[tuple[float, ...]]:
    """A distinct colour per class: matplotlib's 10 default ones, or tab20 / a continuous map for
    more."""
    if n <= 10:
        return [mpl.colors.to_rgba(f"C{k}") for k in range(n)]
    cmap = mpl.colormaps["tab20" if n <= 20 else "turbo"]
    return [cmap(k / max(n - 1, 1)) if n > 20 else cmap(k) for k in range(n)]


def _second_column(u: np.ndarray) -> np.ndarray:
    return u[:, 1] if u.shape[1] > 1 else np.zeros(len(u))


def plot_learning_curve(
    history: Mapping[int, float],
    lr: float,
    iterations: int,
    seed: int,
    train_accuracy: float,
    val_accuracy: float,
) -> Figure:
    """Training loss per step of one MLP cell (`history`: step → loss), with its final accuracies in
    the title."""
    # Fixed margins instead of a layout engine: one of these per cell, and constrained layout
    # doubles its cost.
    fig = Figure(figsize=(5, 3.5))
    fig.subplots_adjust(left=0.16, right=0.97, bottom=0.13, top=0.9)
    ax = fig.subplots()
    ax.plot(np.array(list(history)) + 1, list(history.values()))
    ax.set(xlabel="step", ylabel="training loss (cross-entropy)")
    title = (
        f"lr={lr:g}, {iterations} iterations, seed {seed}: train {train_accuracy:.0%}, val "
        f"{val_accuracy:.0%}"
    )
    ax.set_title(title, fontsize=10)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_PlainLogFormatter())
    ax.yaxis.set_minor_formatter(_PlainLogFormatter())
    return fig


class _PlainLogFormatter(LogFormatter):
    """The ticks a log axis labels, written as plain numbers (1.06, 0.1): narrower than 1.06×10⁰, so
    they fit."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def plot_grid_summary(cells: pd.DataFrame) -> Figure:
    """Q2_2: train and validation accuracy against lr, one line per iteration count, each seed a
    dot."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric in zip(axes, ("train_accuracy", "val_accuracy"), strict=False):
        for iterations, group in cells.groupby("iterations"):
            means = group.groupby("lr")[metric].mean()
            (line,) = ax.plot(
                means.index, means.values, marker="o", label=f"{iterations} iterations"
            )
            ax.scatter(group["lr"], group[metric], color=line.get_color(), s=10, alpha=0.5)
        ax.set(xscale="log", xlabel="learning rate", title=metric.replace("_", " "), ylim=(0, 1.05))
    axes[0].set_ylabel("accuracy (mean line, seeds as dots)")
    axes[0].legend()
    return fig


def plot_val_accuracy_errorbars(summary: pd.DataFrame) -> Figure:
    """Mean validation accuracy against lr with 95% intervals over seeds, one line per iteration
    count."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for iterations, group in summary.groupby("iterations"):
        group = group.sort_values("lr")
        mean = group["val_accuracy_mean"]
        errors = [mean - group["val_accuracy_ci95_low"], group["val_accuracy_ci95_high"] - mean]
        ax.errorbar(
            group["lr"],
            mean,
            yerr=np.clip(np.nan_to_num(errors), 0, None),
            marker="o",
            capsize=4,
            label=f"{iterations} iterations",
        )
    ax.set(
        xscale="log", xlabel="learning rate", ylabel="validation accuracy (mean, 95% CI over seeds)"
    )
    ax.legend()
    return fig


def plot_mean_learning_curves(histories: pd.DataFrame) -> Figure:
    """Mean training loss per step for each lr, with a ±1 std band over seeds (columns: lr, seed,
    step, loss)."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for lr, group in histories.groupby("lr"):
        by_step = group.groupby("step")["loss"]
        mean, std = by_step.mean(), by_step.std(ddof=1).fillna(0.0)
        (line,) = ax.plot(mean.index + 1, mean.values, label=f"lr={lr:g}")
        ax.fill_between(mean.index + 1, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set(xlabel="step", ylabel="training loss (mean ± 1 std over seeds)", yscale="log")
    ax.legend()
    return fig


def plot_cell_heatmap(summary: pd.DataFrame, metric: str = "val_accuracy") -> Figure:
    """lr × iterations heatmap of a metric's mean over seeds, each cell annotated mean ± std."""
    means = summary.pivot_table(
        index="lr", columns="iterations", values=f"{metric}_mean"
    ).sort_index(ascending=False)
    stds = summary.pivot_table(
        index="lr", columns="iterations", values=f"{metric}_std"
    ).reindex_like(means)
    fig = Figure(
        figsize=(1.6 * means.shape[1] + 2.5, 0.7 * means.shape[0] + 1.5), layout="constrained"
    )
    ax = fig.subplots()
    image = ax.imshow(
        means.values,
        cmap="viridis",
        vmin=0,
        vmax=1 if "accuracy" in metric else None,
        aspect="auto",
    )
    for i in range(means.shape[0]):
        for j in range(means.shape[1]):
            ax.text(
                j,
                i,
                f"{means.values[i, j]:.2f} ± {np.nan_to_num(stds.values[i, j]):.2f}",
                ha="center",
                va="center",
                color="white" if means.values[i, j] < 0.6 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(means.shape[1]), [str(c) for c in means.columns])
    ax.set_yticks(range(means.shape[0]), [f"{lr:g}" for lr in means.index])
    ax.set(
        xlabel="iterations",
        ylabel="learning rate",
        title=f"{metric.replace('_', ' ')}: mean ± std over seeds",
    )
    fig.colorbar(image, ax=ax)
    return fig


def plot_paired_differences(paired: pd.DataFrame, pairs: pd.DataFrame, limit: int = 12) -> Figure:
    """One panel per comparison (the first `limit` of `pairs`): a line per seed from its value in A
    to its value in B.

    `paired` holds a, b, seed, split_seed, value_a, value_b; each seed keeps its colour across
    panels, and split seeds after the first are drawn dashed.
    """
    shown = pairs.head(limit)
    columns = max(1, min(len(shown), 4))
    rows = max(1, -(-len(shown) // columns))
    fig = Figure(figsize=(3.3 * columns, 3.1 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    seeds = sorted(paired["seed"].unique()) if len(paired) else []
    colours = {seed: f"C{k % 10}" for k, seed in enumerate(seeds)}
    first_split = paired["split_seed"].min() if len(paired) else 0
    for ax, row in zip(axes, shown.itertuples(), strict=False):
        values = paired[(paired["a"] == row.a) & (paired["b"] == row.b)]
        for r in values.itertuples():
            ax.plot(
                [0, 1],
                [r.value_a, r.value_b],
                marker="o",
                color=colours[r.seed],
                alpha=0.8,
                linestyle="-" if r.split_seed == first_split else "--",
            )
        first, second, where = contrast_labels(row.a, row.b)
        ax.set_xticks([0, 1], [first, second], fontsize=8)
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(
            (
                f"{where.removeprefix(' at ')}\nA − B {row.mean_diff:+.3f}, t p {row.p_t:.3g}, "
                f"Holm {row.p_holm:.3g}"
            ),
            fontsize=8,
        )
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    metric = shown["metric"].iloc[0] if len(shown) else "metric"
    axes[0].set_ylabel(metric.replace("_", " "))
    if 0 < len(seeds) <= 10:
        handles = [
            Line2D([], [], color=colours[seed], marker="o", label=f"seed {seed}") for seed in seeds
        ]
        fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    fig.suptitle(
        f"{metric.replace('_', ' ')} seed by seed, A (left) to B (right): {len(shown)} of "
        f"{len(pairs)} comparisons"
    )
    return fig


def plot_score_distributions(
    cells: pd.DataFrame, metric: str = "val_accuracy", limit: int = 12
) -> Figure:
    """rliable's score distribution: for each (lr, iterations) group, the fraction of its runs whose
    `metric` is above each threshold τ; a curve that lies above another is better at every τ. At
    most `limit` groups, the best by mean."""
    groups = cells.groupby(["lr", "iterations"])[metric]
    shown = groups.mean().sort_values(ascending=False).head(limit).index
    thresholds = np.linspace(0.0, 1.0, 201)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for k, (lr, iterations) in enumerate(
        shown
    ):  # groups with equal scores overlap: each drawn thinner, dashed apart
        values = groups.get_group((lr, iterations)).dropna().to_numpy()
        ax.step(
            thresholds,
            (values[:, None] > thresholds).mean(axis=0),
            where="post",
            label=f"lr={lr:g} it={iterations}",
            linewidth=3 - 2 * k / max(len(shown), 1),
            linestyle=("-", "--", ":", "-.")[k % 4],
        )
    more = f" (the best {limit} of {groups.ngroups} groups)" if groups.ngroups > limit else ""
    ax.set(
        xlabel=f"threshold τ on {metric.replace('_', ' ')}",
        ylabel="fraction of runs with score > τ",
        ylim=(-0.02, 1.02),
        title=f"score distributions over seeds{more}",
    )
    ax.legend(fontsize=8)
    return fig


def grid_summary_figures(
    cells: pd.DataFrame,
    curves: pd.DataFrame,
    summary: pd.DataFrame,
    paired: pd.DataFrame,
    pairs: pd.DataFrame,
) -> dict[str, Figure]:
    """The grid's summary figures by artifact name, from its cells and curves and their comparison
    over seeds (a SeedComparison's summary, paired values and pairs)."""
    return {
        "grid_summary": plot_grid_summary(cells),
        "val_accuracy_vs_lr": plot_val_accuracy_errorbars(summary),
        "mean_learning_curves": plot_mean_learning_curves(curves),
        "cell_heatmap": plot_cell_heatmap(summary),
        "paired_differences": plot_paired_differences(paired, pairs),
        "score_distributions": plot_score_distributions(cells),
    }


VERDICT_COLOURS = {
    "first": "tab:blue",
    "unchanged": "tab:grey",
    "identical": "tab:green",
    "within-noise": "tab:olive",
    "changed": "tab:red",
    "": "black",
}


def plot_history(history: pd.DataFrame) -> Figure:
    """`lab2 history`: the best group's val accuracy run after run, each run coloured by its verdict
    since the run before it."""
    fig = Figure(figsize=(max(6.0, 0.6 * len(history) + 2), 4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(history))
    ax.plot(x, history["best_val_accuracy"], color="lightgrey", zorder=1)
    for verdict, rows in history.groupby("verdict", sort=False):
        ax.scatter(
            x[rows.index],
            rows["best_val_accuracy"],
            s=50,
            zorder=2,
            color=VERDICT_COLOURS.get(verdict, "black"),
            label=verdict or "(not watched)",
        )
    ax.set_xticks(
        x,
        [f"{s}\n{r[:8]}" for s, r in zip(history["started"], history["run_id"], strict=True)],
        rotation=45,
        ha="right",
        fontsize=8,
    )
    ax.set(
        ylabel="best group's mean val accuracy",
        title="lab2 runs, oldest to newest, by verdict since the run before",
    )
    ax.legend(title="verdict", fontsize=8)
    return fig
