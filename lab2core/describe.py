"""What a person reads first in the MLflow UI: run names and markdown descriptions, from plain values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from lab2.core.seeds import METRICS, SeedComparison, pairs_markdown

GROUP_BY_HINT = "In the runs table, **Group by → Tags → `lab2.group`** folds each cell's seeds into one row (mean of each metric)."
PAIRS_SHOWN = 5  # the description shows the first comparisons; seed_pairs.csv holds every one
GROUPS_SHOWN = 12  # a larger grid's table shows its best groups; seed_summary.csv holds every one
REUSED_SHOWN = 24  # links to reused runs; units/*.csv lists every unit


def cell_run_name(lr: float, iterations: int, seed: int, split_seed: int = 0) -> str:
    """A cell's run name, short enough for MLflow's default column: "lr0.1·it100·s0" ("·split1" on split seed 1)."""
    return f"lr{lr:g}·it{iterations}·s{seed}" + (f"·split{split_seed}" if split_seed else "")


def factorisation_run_name(step: str, matrix: str) -> str:
    """A factorisation run's name: "gd iris", "svd lab1-3x3"."""
    return f"{'gd' if step == 'gd-factorise' else 'svd'} {matrix}"


def cell_description(lr: float, iterations: int, seed: int, val_accuracy: float, train_accuracy: float, diverged: bool) -> str:
    """One line on an `mlp` run."""
    if diverged:
        return f"MLP cell lr {lr:g}, {iterations} full-batch steps, init seed {seed}: **diverged** (loss not finite)."
    return (
        f"MLP cell lr {lr:g}, {iterations} full-batch steps, init seed {seed}: "
        f"validation accuracy {val_accuracy:.1%}, training {train_accuracy:.1%}."
    )


def factorisation_description(step: str, matrix: str, rank: int, loss: float) -> str:
    """One line on a `gd-factorise` or `svd-baseline` run."""
    how = "gradient descent with autograd" if step == "gd-factorise" else "truncated SVD (the optimum)"
    return f"Rank-{rank} factorisation of `{matrix}` by {how}: loss ‖A − UVᵀ‖²_F = {loss:.5g}."


def seed_table_markdown(seeds: SeedComparison) -> str:
    """The grid's mean ± sd per group as a markdown table, best group in bold; of a larger grid, its best groups."""
    best = seeds.best
    header = "| lr | iterations | seeds | " + " | ".join(METRICS) + " |"
    rule = "|" + "---|" * (3 + len(METRICS))
    summary = seeds.summary
    if len(summary) > GROUPS_SHOWN:
        summary = summary.nlargest(GROUPS_SHOWN, "val_accuracy_mean", keep="first")
        header = f"The {GROUPS_SHOWN} best of {len(seeds.summary)} groups by mean val accuracy (every group in `seed_summary.csv`):\n\n" + header
    rows = []
    for row in summary.to_dict(orient="records"):
        cells = [f"{row['lr']:g}", str(row["iterations"]), str(int(row["val_accuracy_n"]))]
        cells += [f"{row[f'{m}_mean']:.3f} ± {row[f'{m}_std']:.3f}" for m in METRICS]
        if (row["lr"], row["iterations"]) == (best["lr"], best["iterations"]):
            cells = [f"**{c}**" for c in cells]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def pipeline_description(
    what_ran: Sequence[str],
    seeds: SeedComparison | None = None,
    factorisation: pd.DataFrame | None = None,
    flow_run_url: str | None = None,
    reused: Sequence[tuple[str, str]] = (),
    best_run: tuple[str, str] | None = None,
) -> str:
    """The parent run's description (markdown): what ran, the grid's table, the best group, where it ran.

    `reused` holds (unit name, link) of the units taken from earlier runs; `best_run` (name, link) the
    best group's run whose model is logged.
    """
    parts = []
    if seeds is not None:  # first: MLflow folds a long description after a few lines
        model = f" The model `lab2-mlp` is its seed run [{best_run[0]}]({best_run[1]})." if best_run else ""
        parts.append(f"**Best group: {seeds.best_label()}** (highest mean validation accuracy; ties go to fewer iterations).{model}")
    if flow_run_url:
        parts.append(f"Prefect flow run: [{flow_run_url}]({flow_run_url})")
    else:
        parts.append("Prefect flow run: none kept (run under Prefect's temporary local API).")
    parts.append("**lab2** ran " + " ".join(what_ran))
    if seeds is not None:
        parts.append("Q2, MLP grid, mean ± sd over seeds:\n\n" + seed_table_markdown(seeds))
        parts.append(GROUP_BY_HINT + " Statistics and 95% intervals: `seed_summary.csv`, `seed_summary.html`.")
        if len(seeds.pairs):
            parts.append(
                "Paired comparisons of val accuracy, A − B seed by seed (all of them in `seed_pairs.csv`):\n\n"
                + pairs_markdown(seeds.pairs, limit=PAIRS_SHOWN)
            )
    if factorisation is not None and len(factorisation):
        rows = [f"| `{r.matrix}` | {r.gd_loss:.5g} | {r.svd_loss:.5g} |" for r in factorisation.itertuples()]
        parts.append("Q1, rank-r factorisation (loss ‖A − UVᵀ‖²_F):\n\n| matrix | gradient descent | truncated SVD |\n|---|---|---|\n" + "\n".join(rows))
    if reused:
        links = ", ".join(f"[{name}]({link})" for name, link in reused[:REUSED_SHOWN])
        more = f" and {len(reused) - REUSED_SHOWN} more (every unit in `units/`)" if len(reused) > REUSED_SHOWN else ""
        parts.append(f"Reused from earlier runs ({len(reused)}): {links}{more}")
    return "\n\n".join(parts)


def grid_sentence(
    lrs: Sequence[float], iterations: Sequence[int], seeds: Sequence[int], setup: Mapping[str, object], split_seeds: Sequence[int] = (0,)
) -> str:
    """What the Q2 grid ran, in one sentence."""
    axes = f"lr ∈ {{{', '.join(f'{v:g}' for v in lrs)}}} × iterations ∈ {{{', '.join(map(str, iterations))}}} × seeds {{{', '.join(map(str, seeds))}}}"
    if len(split_seeds) > 1:
        axes += f" × split seeds {{{', '.join(map(str, split_seeds))}}}"
    how = ", ".join(f"{k} {v}" for k, v in setup.items() if k != "split_seed" or len(split_seeds) == 1)
    runs = len(lrs) * len(iterations) * len(seeds) * len(split_seeds)
    return f"Q2, the MLP grid {axes} ({runs} `mlp` runs; {how})."


def factorisation_sentence(matrices: Sequence[str], rank: int, lr: float, epochs: int) -> str:
    """What Q1 ran, in one sentence."""
    names = " and ".join(f"`{m}`" for m in matrices)
    return f"Q1, rank-{rank} factorisation of {names} by gradient descent (lr {lr:g}, {epochs} epochs) beside truncated SVD."


def units_sentence(units: pd.DataFrame) -> str:
    """How many runs a pipeline run computed and how many it reused, from its units table."""
    reused = int(units["reused"].sum())
    return f"{len(units) - reused} computed, {reused} reused from earlier FINISHED runs of the same identity"
