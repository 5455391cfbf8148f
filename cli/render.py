"""What `lab2` prints: tables and sentences for a terminal, from what a flow returned or MLflow
holds."""

from __future__ import annotations

import math
import shutil
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

WIDTH = 100  # the columns a line of lab2's own output fits in
# the first the seed table leaves out in a terminal
SEED_COLUMNS_LAST = (
    "train_loss",
    "val_binomial_se",
)
CELL_ROWS_SHOWN = 30  # a larger grid's cells are in mlp_cells.csv, not the terminal
# past this many comparisons, the terminal shows the most significant ones (seed_pairs.csv: all)
PAIRS_SHOWN = 12

if TYPE_CHECKING:
    import pandas as pd

    from lab2.core.seeds import SeedComparison
    from lab2.core.watch import SinceLastRun
    from lab2.flows.pipeline import Lab2Result
    from lab2.tasks.rerun import Rerun


def table(frame: pd.DataFrame) -> str:
    """A frame as a terminal table, numbers to 4 significant digits."""
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def fitted(frame: pd.DataFrame) -> str:
    """`table(frame)` in WIDTH columns: its rightmost columns are left out until it fits (the CSVs
    hold them all)."""
    shown = frame
    while shown.shape[1] > 1 and max(map(len, table(shown).splitlines())) > WIDTH:
        shown = shown.iloc[:, :-1]
    return table(shown)


def wrapped(text: str, first: str = "  ", then: str = "  ") -> str:
    """A sentence wrapped at WIDTH columns, never cut: `first` before its first line, `then` before
    the rest."""
    return textwrap.fill(
        text, WIDTH, initial_indent=first, subsequent_indent=then, break_on_hyphens=False
    )


def flat(values: Sequence[object]) -> str:
    """Values as a user types them after an option: "0.1 0.01"."""
    return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def duration(seconds: float) -> str:
    """A duration for reading: "45 s", "12 min", "3.5 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def lab2_result(result: Lab2Result, uri: str) -> str:
    """What `lab2 run` prints after `results(result)`: the units, the MLflow link, the report's
    location."""
    from lab2.core.describe import units_sentence

    return "\n".join(
        [
            "",
            f"runs: {units_sentence(result.units)}",
            *_since(result.since),
            *closing(result.parent_run_id, uri, result.runs_url, result.report),
        ]
    )


def results(result: Lab2Result) -> str:
    """What a pipeline run found: Q1, Q2's cells and seeds, its diverged cells (kept on the parent
    run as terminal.txt, which a rerun with nothing to do prints again)."""
    from lab2.core.describe import q1_display, q1_notes

    # the rows' hits: a tag on each cell run
    cells = result.cells.drop(columns="val_correct", errors="ignore")
    lines = [
        "",
        "Q1 factorisation (loss ‖A − UVᵀ‖²_F; gap: GD above the SVD optimum; angles in degrees):",
        fitted(q1_display(result.factorisation)),
        *(wrapped(note, "  ", "    ") for note in q1_notes(result.factorisation)),
        "",
    ]
    if len(cells) <= CELL_ROWS_SHOWN:
        lines += ["Q2 MLP grid (accuracy 0–1):", fitted(cells)]
    else:
        lines.append(
            f"Q2 MLP grid: {len(cells)} cells, each in mlp_cells.csv on the parent run and as "
            "a child run"
        )
    lines.append(seeds(result.seeds))
    diverged = result.cells[result.cells["diverged"]]
    if len(diverged):
        which = ", ".join(
            f"lr={r.lr:g} it={r.iterations} seed={r.seed}" for r in diverged.itertuples()
        )
        lines.append(
            wrapped(
                (
                    f"diverged: {len(diverged)} of {len(result.cells)} cells (loss not finite; "
                    f"tag lab2.diverged=true): {which}"
                ),
                "",
                "  ",
            )
        )
    return "\n".join(lines)


def rerun(done: Rerun, uri: str) -> str:
    """`lab2 run` with nothing to do: the results the run it copied printed, its units, the verdict
    since the last run, the MLflow link."""
    said = (
        f"0 computed, {done.units} reused: every unit and result of run {done.rerun_of} (same "
        "parameters, data, code and packages)"
    )
    return "\n".join(
        [
            done.terminal,
            "",
            wrapped(f"runs: {said}", "", "  "),
            *_since(done.since),
            *closing(done.run_id, uri, done.runs_url, done.report),
        ]
    )


def _since(since: SinceLastRun | None) -> list[str]:
    """The verdict since the last run with the same parameters, wrapped, after a blank line (nothing
    without one)."""
    from lab2.core.watch import since_last_run_line

    return [] if since is None else ["", wrapped(since_last_run_line(since), "", "  ")]


def closing(
    parent_run_id: str, uri: str, runs_url: str | None, report: str | None = None
) -> list[str]:
    """The parent run and where to see every run (the MLflow server's page, or the command that
    serves a local store), then where the lab's report opens: the last line."""
    lines = ["", f"MLflow parent run {parent_run_id}."]
    if uri.startswith(("http://", "https://")):
        lines += ["Every run in the MLflow server's UI:", f"  {runs_url}"]
    else:
        lines += [
            "Every run in the MLflow UI (the command prints its link; Ctrl-C stops it):",
            f"  {shell_command('lab2')} ui",
        ]
    if report:
        lines += ["", "The lab's report, every claim of the original checked:", f"  {report}"]
    return lines


def shell_command(name: str) -> str:
    """How to call this environment's console script `name` from the working directory: its bare
    name when PATH finds this one, else its path (relative below the working directory), so that
    the printed command works when pasted."""
    from lab2.cli.processes import console_script

    script = Path(console_script(name))
    found = shutil.which(name)
    if found and Path(found).resolve() == script.resolve():
        return name
    return str(script.relative_to(Path.cwd())) if script.is_relative_to(Path.cwd()) else str(script)


def seeds(comparison: SeedComparison, explain: bool = False) -> str:
    """The seed table with its notes, the paired comparisons, and the best group."""
    from lab2.core.describe import best_label, summary_notes

    metric = comparison.pairs["metric"].iloc[0] if len(comparison.pairs) else "val_accuracy"
    which = "neighbours along lr and iterations, and the best group against every other"
    return "\n".join(
        [
            " MLP cells over seeds",
            _seed_table(comparison.summary),
            *(wrapped(note) for note in summary_notes(comparison.summary)),
            "",
            wrapped(f"Paired comparisons of {metric}, A − B seed by seed: {which}", "", ""),
            pairs(comparison.pairs, explain),
            "",
            f"Best group: {best_label(comparison)}",
        ]
    )


def named_pairs(comparison: SeedComparison, explain: bool = False) -> str:
    """`lab2 compare --pair`: the named groups over seeds, each named pair's verdict line and its
    caveats (with `explain`, its reasoning), nothing else."""
    from lab2.core.verdicts import caveat_notes

    summary = comparison.summary
    named = summary[summary["group"].isin({*comparison.pairs["a"], *comparison.pairs["b"]})]
    records = comparison.pairs.to_dict("records")
    lines = [_seed_table(named), *(r["verdict"] for r in records)]
    if notes := caveat_notes(records):
        lines.append(wrapped(" ".join(notes), "", ""))
    if explain:
        lines += [wrapped(f"Why: {r['reasoning']}.", "", "  ") for r in records]
    return "\n".join(lines)


def _seed_table(summary: pd.DataFrame) -> str:
    from lab2.core.describe import display_table

    shown = display_table(summary)
    first = [c for c in shown.columns if c not in SEED_COLUMNS_LAST] + [
        c for c in SEED_COLUMNS_LAST if c in shown.columns
    ]
    return fitted(shown[first])


def pairs(compared: pd.DataFrame, explain: bool = False) -> str:
    """The paired comparisons as a numbered table, what its columns mean and each caveat once,
    then a verdict line per comparison (with `explain`, the reasoning behind each), in WIDTH
    columns (the groups as MLflow labels them; every column in seed_pairs.csv)."""
    from lab2.core.describe import pairs_display
    from lab2.core.family import significant
    from lab2.core.verdicts import caveat_notes

    if compared.empty:
        return "  (no pairs to compare)"
    shown = pairs_display(compared)[
        ["#", "a", "b", "n", "a_minus_b", "p_t", "p_holm", "P(A>B)", "seeds_80%"]
    ]
    legend = (
        "[low, high]: t interval at the row's Holm step (the family's level; its confidence and "
        "the 95% interval alone are in seed_pairs.csv); p_t: paired t-test; p_holm: Holm over the "
        f"grid's {compared['family'].iloc[0]} comparisons; P(A>B): share of seeds where A is "
        "higher (ties half); seeds_80%: for a row not yet settled, seeds for 80% power at α/m if "
        "the true difference were the one seen (over the sd's 95% interval; the verdict quotes the "
        "sd seen)."
    )
    rows = list(range(len(compared)))
    if (
        len(rows) > PAIRS_SHOWN
    ):  # neighbours first: the best group against a poor one says the least
        ranked = compared.reset_index(drop=True).assign(
            best=compared["kind"].to_numpy() == "vs best"
        )
        rows = sorted(ranked.sort_values(["best", "p_holm"]).index[:PAIRS_SHOWN])
    records = [compared.iloc[k].to_dict() for k in rows]
    numbers = [k + 1 for k in rows]
    notes = [wrapped(note) for note in caveat_notes(records, numbers)]
    if len(rows) < len(compared):
        held = compared["p_holm"].map(significant).sum()
        notes.append(
            wrapped(
                f"Shown: the {len(rows)} of {len(compared)} comparisons with the smallest Holm p, "
                f"neighbours first ({held} significant in all); seed_pairs.csv and "
                "seed_summary.html hold every one."
            )
        )
    lines = [table(shown.iloc[rows]), wrapped(legend), *notes, "Verdicts:"]
    lines += [f"{k:>2}. {r['verdict']}" for k, r in zip(numbers, records, strict=True)]
    if explain:
        lines.append("Reasoning:")
        lines += [
            wrapped(r["reasoning"], f"{k:>2}. ", "    ")
            for k, r in zip(numbers, records, strict=True)
        ]
    return "\n".join(lines)


def history(runs: pd.DataFrame) -> str:
    """`lab2 history`: a line per run (oldest first) with its verdict and best group's val accuracy,
    what went in differently wrapped beneath it."""
    lines = [f"{'started (UTC)':16}  {'run':32}  {'verdict':12}  best val acc"]
    for r in runs.itertuples():
        best = "-" if math.isnan(r.best_val_accuracy) else f"{r.best_val_accuracy:.3f}"
        lines.append(f"{r.started:16}  {r.run_id:32}  {r.verdict or '-':12}  {best}")
        if r.cause:
            lines.append(wrapped(f"what went in differently: {r.cause}", "    ", "      "))
    return "\n".join(lines)
