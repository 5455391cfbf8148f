"""What a person reads: run names, markdown descriptions, and the seed tables with their numbers
rounded for reading."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from lab2.core.params import GdLr, MLPSetup
from lab2.core.seeds import CELL_KEYS, METRICS, SeedComparison, group_columns
from lab2.core.stats import INTERVAL_KIND
from lab2.core.verdicts import (
    CLEARLY_BETTER,
    CLEARLY_WORSE,
    SETTLED,
    bound,
    call_words,
    caveat_notes,
    number_format,
    short_label,
    verdict_line,
)

if TYPE_CHECKING:  # torch: not on a rerun's path
    from lab2.core.data import Dataset

GROUP_BY_HINT = (
    "In the runs table, **Group by → Tags → `lab2.group`** folds each cell's seeds into one row "
    "(mean of each metric)."
)
PAIRS_SHOWN = 5  # the description shows the first comparisons; seed_pairs.csv holds every one
GROUPS_SHOWN = 12  # a larger grid's table shows its best groups; seed_summary.csv holds every one
HOW_IT_RAN = "**How it ran**"  # the description's last section: where, and what it reused
# a rule under the description's first section, what changed since the last run
SINCE_END = "\n\n---"
REUSED_SHOWN = 24  # links to reused runs; units/*.csv lists every unit


def cell_run_name(lr: float, iterations: int, seed: int, split_seed: int = 0) -> str:
    """A cell's run name, short enough for MLflow's default column: "lr0.1·it100·s0" ("·split1" on
    split seed 1)."""
    return f"lr{lr:g}·it{iterations}·s{seed}" + (f"·split{split_seed}" if split_seed else "")


def factorisation_run_name(step: str, matrix: str) -> str:
    """A factorisation run's name: "gd iris", "svd lab1-3x3"."""
    return f"{'gd' if step == 'gd-factorise' else 'svd'} {matrix}"


def cell_description(
    lr: float,
    iterations: int,
    seed: int,
    val_accuracy: float,
    train_accuracy: float,
    diverged: bool,
) -> str:
    """One line on an `mlp` run."""
    if diverged:
        return (
            f"MLP cell lr {lr:g}, {iterations} full-batch steps, init seed {seed}: **diverged** "
            "(loss not finite)."
        )
    return (
        f"MLP cell lr {lr:g}, {iterations} full-batch steps, init seed {seed}: "
        f"validation accuracy {val_accuracy:.1%}, training {train_accuracy:.1%}."
    )


def factorisation_description(step: str, matrix: str, rank: int, loss: float) -> str:
    """One line on a `gd-factorise` or `svd-baseline` run."""
    how = (
        "gradient descent with autograd"
        if step == "gd-factorise"
        else "truncated SVD (the optimum)"
    )
    return f"Rank-{rank} factorisation of `{matrix}` by {how}: loss ‖A − UVᵀ‖²_F = {loss:.5g}."


def gd_note(row: Mapping[str, Any]) -> str | None:
    """What to know about one matrix's GD, from its row of Q1's table (lab2.core.factorise.q1_row),
    for a GD that did not converge: that it diverged or how far above the optimum it stopped, and
    what would do better."""
    outcome = row.get("gd", "converged")  # Q1's tables before GD's outcome had none
    matrix, lr, stable_lr = row["matrix"], row.get("gd_lr"), row.get("stable_lr")
    if outcome == "diverged":
        return (
            f"GD diverged on {matrix} at lr {lr:.3g} (loss not finite), angles left empty; "
            f"0.25/σ₁ = {stable_lr:.3g} would converge: --gd-lr auto"
        )
    if outcome == "not converged":
        better = "more --gd-epochs" if lr == stable_lr else "--gd-lr auto or more --gd-epochs"
        return (
            f"GD on {matrix} not converged: {row['optimum_gap']:.2%} above the SVD optimum at lr "
            f"{lr:.3g}; try {better}"
        )
    return None


def q1_notes(summary: pd.DataFrame) -> list[str]:
    """gd_note of each matrix whose GD did not converge."""
    notes = (gd_note(row) for row in summary.to_dict("records"))
    return [note for note in notes if note]


def q1_display(summary: pd.DataFrame) -> pd.DataFrame:
    """Q1's table rounded for reading: matrix, GD's step, both losses, GD's gap to the optimum in
    percent and its outcome, then the angles in degrees ("—" where there is none)."""

    def shown(values: pd.Series, digits: str, percent: bool = False) -> list[str]:
        fmt = f"{{:.{digits}{'%' if percent else 'g'}}}"
        return [fmt.format(v) if pd.notna(v) else "—" for v in values]

    table = pd.DataFrame({"matrix": summary["matrix"]})
    if "gd_lr" in summary.columns:
        table["gd_lr"] = shown(summary["gd_lr"], "3")
    table["gd_loss"], table["svd_loss"] = (
        shown(summary["gd_loss"], "5"),
        shown(summary["svd_loss"], "5"),
    )
    if "optimum_gap" in summary.columns:
        table["gap"], table["gd"] = shown(summary["optimum_gap"], "2", percent=True), summary["gd"]
    for column in summary.columns:
        if column.endswith("_deg"):
            table[column.removesuffix("_deg").replace("_angle_", "_")] = shown(summary[column], "3")
    return table


def markdown_table(frame: pd.DataFrame) -> str:
    """A frame already rounded for reading as a markdown table (pipes inside cells escaped)."""

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def group_result(best: Mapping[str, object]) -> str:
    """A group's validation accuracy over its seeds: "val accuracy 0.953 ± 0.012 over 3 seeds"."""
    return (
        f"val accuracy {best['val_accuracy_mean']:.3f} ± {best['val_accuracy_std']:.3f} over "
        f"{best['val_accuracy_n']:.0f} seeds"
    )


def model_card(
    cell: tuple[float, int, int],
    best: Mapping[str, Any],
    data: Dataset,
    setup: MLPSetup,
    val_rows: int,
    val_accuracy: float,
    cell_run: tuple[str, str],
) -> str:
    """The winner model's description (markdown): what it is, its data, its recipe, how well it
    did over seeds and what that rests on, the run it was trained in (`cell_run`: name, link)."""
    lr, iterations, seed = cell
    classes = ", ".join(data.class_names[:8]) + (" …" if len(data.class_names) > 8 else "")
    n_seeds = int(best["val_accuracy_n"])
    return "\n".join(
        [
            f"lab2's MLP, the grid's best group lr={lr:g}, {iterations} iterations; this is its "
            f"seed-{seed} model.",
            "",
            f"- **Input**: a table of the {data.features.shape[1]} feature columns in raw units "
            f"(named as in the data); **output**: the predicted `{data.label_name}` and a "
            "`probability_<class>` column per class.",
            f"- **Data**: `{data.name}` (digest {data.digest}), {len(data.labels)} rows, "
            f"{len(data.class_names)} classes ({classes}).",
            f"- **Recipe**: {data.features.shape[1]} → {setup.hidden} ReLU → "
            f"{len(data.class_names)}, weights uniform [0, 1) from seed {seed}, full-batch "
            f"gradient descent at lr {lr:g} for {iterations} iterations on cross-entropy; "
            f"features scaled by `{setup.scaling}` fitted on {setup.scaling_rows} rows (inside "
            "the model).",
            f"- **Validation accuracy**: {val_accuracy:.1%} for this model; its group "
            f"{best['val_accuracy_mean']:.3f} (95% interval {best['val_accuracy_ci95_low']:.3f} "
            f"to {best['val_accuracy_ci95_high']:.3f} over {n_seeds} seeds).",
            f"- **It rests on** {n_seeds} init seeds and {val_rows} validation rows (split seed "
            f"{setup.split_seed}, protocol `{setup.protocol}`): one row moves accuracy by "
            f"{1 / val_rows:.3g}.",
            f"- **Run**: [{cell_run[0]}]({cell_run[1]})",
        ]
    )


def seed_table_markdown(seeds: SeedComparison) -> str:
    """The grid's mean ± sd per group as a markdown table, best group in bold; of a larger grid, its
    best groups."""
    best = seeds.best
    header = "| lr | iterations | seeds | " + " | ".join(METRICS) + " |"
    rule = "|" + "---|" * (3 + len(METRICS))
    summary = seeds.summary
    if len(summary) > GROUPS_SHOWN:
        summary = summary.nlargest(GROUPS_SHOWN, "val_accuracy_mean", keep="first")
        header = (
            f"The {GROUPS_SHOWN} best of {len(seeds.summary)} groups by mean val accuracy "
            "(every group in `seed_summary.csv`):\n\n"
        ) + header
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
    since_last_run: str | None = None,
) -> str:
    """The parent run's description (markdown): what changed since the last run with the same
    parameters (`since_last_run`, a section ended by SINCE_END), the results (the best group
    first: MLflow folds a long description after a few lines), what ran, the grid's and Q1's
    tables; then, under HOW_IT_RAN, where it ran.

    `reused` holds (unit name, link) of the units taken from earlier runs; `best_run` (name,
    link) the best group's run whose model is logged.
    """
    parts = [results_summary(seeds, best_run)] if seeds is not None else []
    parts.append("**lab2** ran " + " ".join(what_ran))
    if seeds is not None:
        parts.append("Q2, MLP grid, mean ± sd over seeds:\n\n" + seed_table_markdown(seeds))
        parts.append(
            GROUP_BY_HINT
            + " Statistics and 95% intervals: `seed_summary.csv`, `seed_summary.html`."
        )
        if len(seeds.pairs):
            parts.append(
                (
                    "Paired comparisons of val accuracy, A − B seed by seed (all of them in "
                    "`seed_pairs.csv`):\n\n"
                )
                + pairs_markdown(seeds.pairs, limit=PAIRS_SHOWN)
            )
    if factorisation is not None and len(factorisation):
        shown = q1_display(factorisation).filter(
            ["matrix", "gd_lr", "gd_loss", "svd_loss", "gap", "gd"]
        )
        shown["matrix"] = [f"`{name}`" for name in shown["matrix"]]
        notes = "".join(f"\n\n{note}." for note in q1_notes(factorisation))
        parts.append(
            "Q1, rank-r factorisation (loss ‖A − UVᵀ‖²_F; gap: GD's loss above the SVD optimum):"
            f"\n\n{markdown_table(shown)}{notes}"
        )
    return under_since_last_run(
        since_last_run, "\n\n".join([*parts, how_it_ran(flow_run_url, reused)])
    )


def under_since_last_run(since_last_run: str | None, description: str) -> str:
    """A description under its first section, what changed since the last run (ended by SINCE_END),
    if there is one."""
    return f"{since_last_run}{SINCE_END}\n\n{description}" if since_last_run else description


def how_it_ran(
    flow_run_url: str | None,
    reused: Sequence[tuple[str, str]],
    rerun_of: tuple[str, str] | None = None,
) -> str:
    """The description's last section: the Prefect flow run, the run whose results a rerun with
    nothing to do copied (`rerun_of`: its id and link), and the units reused from earlier runs
    (name, link)."""
    parts = [HOW_IT_RAN]
    if rerun_of:
        parts.append(
            "Nothing was computed: the same parameters, data, code and packages as run "
            f"[{rerun_of[0]}]({rerun_of[1]}), "
            "whose results and files are copied here."
        )
    if flow_run_url:
        parts.append(f"Prefect flow run: [{flow_run_url}]({flow_run_url})")
    else:
        parts.append(
            "Prefect flow run: none kept (run under Prefect's temporary local API)."
            if not rerun_of
            else "Prefect flow run: none (no Prefect server was up, and nothing here needed one)."
        )
    if reused:
        links = ", ".join(f"[{name}]({link})" for name, link in reused[:REUSED_SHOWN])
        more = (
            f" and {len(reused) - REUSED_SHOWN} more (every unit in `units/`)"
            if len(reused) > REUSED_SHOWN
            else ""
        )
        parts.append(f"Reused from earlier runs ({len(reused)}): {links}{more}")
    return "\n\n".join(parts)


def results_part(description: str) -> str:
    """A pipeline run's description without its since-the-last-run section and its HOW_IT_RAN
    section: what a rerun with nothing to do copies."""
    return description.split(SINCE_END, 1)[-1].lstrip("\n").split(f"\n\n{HOW_IT_RAN}", 1)[0]


def grid_sentence(
    lrs: Sequence[float],
    iterations: Sequence[int],
    seeds: Sequence[int],
    setup: Mapping[str, object],
    split_seeds: Sequence[int] = (0,),
) -> str:
    """What the Q2 grid ran, in one sentence."""
    axes = (
        f"lr ∈ {{{', '.join(f'{v:g}' for v in lrs)}}} × iterations ∈ "
        f"{{{', '.join(map(str, iterations))}}} × seeds {{{', '.join(map(str, seeds))}}}"
    )
    if len(split_seeds) > 1:
        axes += f" × split seeds {{{', '.join(map(str, split_seeds))}}}"
    how = ", ".join(
        f"{k} {v}" for k, v in setup.items() if k != "split_seed" or len(split_seeds) == 1
    )
    runs = len(lrs) * len(iterations) * len(seeds) * len(split_seeds)
    return f"Q2, the MLP grid {axes} ({runs} `mlp` runs; {how})."


def factorisation_sentence(matrices: Sequence[str], rank: int, lr: GdLr, epochs: int) -> str:
    """What Q1 ran, in one sentence."""
    names = " and ".join(f"`{m}`" for m in matrices)
    step = "0.25/σ₁ of each matrix" if lr == "auto" else f"{lr:g}"
    return (
        f"Q1, rank-{rank} factorisation of {names} by gradient descent (lr {step}, {epochs} "
        "epochs) beside truncated SVD."
    )


def units_sentence(units: pd.DataFrame) -> str:
    """How many runs a pipeline run computed and how many it reused, from its units table."""
    reused = int(units["reused"].sum())
    return (
        f"{len(units) - reused} computed, {reused} reused from earlier FINISHED runs of the same "
        "identity"
    )


def best_label(seeds: SeedComparison) -> str:
    """The best group and its mean ± sd validation accuracy: "lr=0.1 iterations=1000: val accuracy
    0.853 ± 0.099"."""
    return f"{seeds.best['group']}: val accuracy {_mean_std(seeds.best, 'val_accuracy')}"


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per group: its keys, seed count, mean ± sd of each metric, val accuracy's 95% t
    interval and binomial SE, and (with several split seeds) the spread due to the init seed and
    to the split."""
    keys = [c for c in group_columns(summary) if summary[c].nunique() > 1 or c in CELL_KEYS]
    table = summary[keys].copy()
    table["n"] = summary["val_accuracy_n"].astype(int)
    table["val_accuracy"] = [_mean_std(row, "val_accuracy") for _, row in summary.iterrows()]
    table["val_ci95"] = [
        f"[{row.val_accuracy_ci95_low:.3f}, {row.val_accuracy_ci95_high:.3f}]"
        for row in summary.itertuples()
    ]
    table["val_binomial_se"] = summary["val_accuracy_binomial_se"].round(3)
    if "val_accuracy_sd_init" in summary.columns:
        table["val_sd_init"] = summary["val_accuracy_sd_init"].round(3)
        table["val_sd_split"] = summary["val_accuracy_sd_split"].round(3)
    for metric in ("train_accuracy", "train_loss", "val_loss"):
        table[metric] = [_mean_std(row, metric) for _, row in summary.iterrows()]
    return table


def summary_notes(summary: pd.DataFrame) -> list[str]:
    """Plain sentences under the table: the interval's kind, the validation resolution, few-seed
    warnings."""
    notes = [f"95% interval: {INTERVAL_KIND}; it stays inside [0, 1] for accuracies."]
    rows = summary["val_rows"].dropna()
    if len(rows):
        n_rows = int(rows.iloc[0])
        largest = summary["val_accuracy_binomial_se"].max()
        notes.append(
            f"Validation set: {n_rows} rows, so one sample moves accuracy by {1 / n_rows:.3g}; "
            f"the binomial standard error of a group's val accuracy is up to {largest:.3f}."
        )
    if "val_accuracy_sd_init" in summary.columns:
        init, split = (
            summary["val_accuracy_sd_init"].mean(),
            summary["val_accuracy_sd_split"].mean(),
        )
        notes.append(
            f"Variance sources (val accuracy, mean over groups): sd {init:.3f} from the init "
            "seed with the split fixed, "
            f"sd {split:.3f} from the split seed with the init fixed."
        )
    notes += [f"Caution: {w}." for w in summary["warning"].unique() if w]
    return notes


def _mean_std(row: Mapping[str, object], metric: str) -> str:
    return f"{row[f'{metric}_mean']:.3f} ± {row[f'{metric}_std']:.3f}"


def pairs_markdown(pairs: pd.DataFrame, limit: int | None = None) -> str:
    """The paired comparisons as a markdown table (for a run description, the report), at most
    `limit` rows, numbered; the numbers in columns, the verdict's call last, each caveat once under
    the table."""
    shown = pairs if limit is None else pairs.head(limit)
    table = pairs_display(shown)[
        ["#", "a", "b", "n", "a_minus_b", "p_t", "p_holm", "P(A>B)", "seeds_80%", "verdict"]
    ]
    table.columns = [
        "#",
        "A",
        "B",
        "n",
        "A − B [Holm-step CI]",
        "p_t",
        "Holm p",
        "P(A>B)",
        "seeds to settle",
        "verdict",
    ]
    records = shown.to_dict("records")
    notes = [markdown_table(table), *caveat_notes(records)]
    if limit is not None and len(pairs) > limit:
        notes.append(f"{len(pairs) - limit} more comparisons in `seed_pairs.csv`.")
    return "\n\n".join(notes)


def results_summary(seeds: SeedComparison, best_run: tuple[str, str] | None = None) -> str:
    """The description's first lines, at most six: the best group with its interval (and its
    model's run, `best_run`: name, link), the comparisons settled, those not and the seeds that
    would settle them, and the lab's finding on lr and iterations where the grid has both."""
    best: Mapping[str, Any] = seeds.best
    model = f"; the model `lab2-mlp` is its run [{best_run[0]}]({best_run[1]})" if best_run else ""
    lines = [
        f"**Best group: {best['group']}**, val accuracy {best['val_accuracy_mean']:.3f} (95% "
        f"interval {best['val_accuracy_ci95_low']:.3f}–{best['val_accuracy_ci95_high']:.3f} over "
        f"{int(best['val_accuracy_n'])} seeds){model}."
    ]
    records = seeds.pairs.to_dict("records")
    if records:
        lines += [_settled_line(records), _unsettled_line(records)]
        finding = lab_finding(records)
        lines += [finding] if finding else []
    return "\n".join(f"- {line}" for line in lines)


def _settled_line(records: Sequence[Mapping[str, Any]]) -> str:
    settled = [r for r in records if r["call"] in SETTLED]
    if not settled:
        return f"Settled: none of the {len(records)} comparisons."
    shown = "; ".join(verdict_line(r) for r in settled[:2])
    more = f"; {len(settled) - 2} more" if len(settled) > 2 else ""
    return f"Settled, {len(settled)} of {len(records)}: {shown}{more}."


def _unsettled_line(records: Sequence[Mapping[str, Any]]) -> str:
    open_ = [r for r in records if r["call"] not in SETTLED]
    if not open_:
        return "Not settled: none."
    needed = sorted(int(r["seeds_needed"]) for r in open_ if pd.notna(r["seeds_needed"]))
    counts = pd.Series([r["call"] for r in open_]).value_counts()
    kinds = ", ".join(f"{k} {call}" for call, k in counts.items())
    seeds = (
        f"; if the differences seen are real, {needed[0]} to {needed[-1]} seeds would settle them"
        if needed
        else ""
    )
    n = int(open_[0]["n"])
    return f"Not settled, {len(open_)} of {len(records)} ({kinds}, with {n} seeds){seeds}."


def lab_finding(records: Sequence[Mapping[str, Any]]) -> str | None:
    """The lab's finding that a larger lr and more iterations raise accuracy, judged on the grid's
    neighbour steps (None without steps along both axes, or for a metric other than accuracy)."""
    steps = [r for r in records if str(r["kind"]).startswith("neighbour")]
    axes = {r["kind"] for r in steps}
    if len(axes) < 2 or "accuracy" not in str(steps[0]["metric"]):
        return None
    up = sum(r["mean_diff"] > 0 for r in steps)
    clearly = sum(r["call"] == CLEARLY_BETTER for r in steps)
    falls = sum(r["call"] == CLEARLY_WORSE for r in steps)
    fell = f", clearly lower in {falls}" if falls else ""
    return (
        f"The lab's finding, a larger lr or more iterations raises accuracy: higher in {up} of "
        f"{len(steps)} neighbour steps, clearly higher in {clearly}{fell}."
    )


def pairs_display(pairs: pd.DataFrame) -> pd.DataFrame:
    """The pair table for reading, its rows numbered (#): the groups as MLflow labels them
    ("lr=0.1 it=100"), the verdict's call, n, the difference with its interval at the row's Holm
    step (the family's level, as the call is judged), the p-values (2 significant digits),
    P(A > B), seeds needed."""
    table = pairs[["a", "b"]].map(short_label)
    table.insert(0, "#", range(1, len(pairs) + 1))
    table["verdict"] = [call_words(r) for r in pairs.to_dict("records")]
    table["n"] = pairs["n"].to_numpy()
    metric = pairs["metric"].iloc[0] if len(pairs) else "val_accuracy"
    table["a_minus_b"] = [
        f"{r.mean_diff:{number_format(metric)}} "
        + (
            f"[{bound(r.family_ci_low, metric)}, {bound(r.family_ci_high, metric)}]"
            if pd.notna(r.family_ci_low)
            else "(no t interval)"
        )
        for r in pairs.itertuples()
    ]
    table["p_t"] = pairs["p_t"].map("{:.2g}".format)
    table["p_holm"] = pairs["p_holm"].map("{:.2g}".format)
    table["p_signflip"] = pairs["p_signflip"].map("{:.2g}".format)
    table["P(A>B)"] = pairs["prob_improvement"].map("{:.2f}".format)
    table["seeds_80%"] = [_seeds_range(row) for row in pairs.itertuples()]
    table["seeds_min_effect"] = pairs["seeds_needed_min_effect"].map(_count)
    table["seeds_ci_min_effect"] = pairs["seeds_for_ci_min_effect"].map(_count)
    return table


def _seeds_range(row) -> str:
    """Seeds for 80% power over the sd's 95% interval ("6–518"), or – (significant already, or no
    estimate)."""
    low, high = row.seeds_needed_low, row.seeds_needed_high
    if pd.isna(low) or pd.isna(high):
        return _count(row.seeds_needed)
    return _count(low) if low == high else f"{int(low)}–{int(high)}"


def _count(value: float | None) -> str:
    return "–" if value is None or pd.isna(value) else str(int(value))
