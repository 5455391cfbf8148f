"""What `lab2` prints: tables and sentences for a terminal, from what a flow returned or MLflow holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING



if TYPE_CHECKING:
    import pandas as pd

    from lab2.core.seeds import SeedComparison
    from lab2.flows.pipeline import Lab2Result


def table(frame: pd.DataFrame) -> str:
    """A frame as a terminal table, numbers to 4 significant digits."""
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def flat(values: Sequence[object]) -> str:
    """Values as a user types them after an option: "0.1 0.01"."""
    return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def duration(seconds: float) -> str:
    """A duration for reading: "45 s", "12 min", "3.5 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def lab2_result(result: Lab2Result, ui_command: str) -> str:
    """Everything `lab2 run` prints once the flow returned: Q1, Q2's cells and seeds, the units, the MLflow link."""
    from lab2.core.describe import units_sentence

    lines = ["", "Q1 factorisation (loss = ‖A − UVᵀ‖²_F):", table(result.factorisation), "", "Q2 MLP grid (accuracy 0–1):",
             table(result.cells.drop(columns="val_correct", errors="ignore"))]  # the rows' hits: in mlp_cells.csv
    lines += [seeds(result.seeds), "", f"runs: {units_sentence(result.units)}"]
    diverged = result.cells[result.cells["diverged"]]
    if len(diverged):
        which = ", ".join(f"lr={r.lr:g} it={r.iterations} seed={r.seed}" for r in diverged.itertuples())
        lines.append(f"diverged: {len(diverged)} of {len(result.cells)} cells (loss not finite; tag lab2.diverged=true): {which}")
    lines += ["", f"MLflow parent run {result.parent_run_id}. Browse every run with:", f"  {ui_command}", f"  {result.runs_url}"]
    return "\n".join(lines)


def seeds(comparison: SeedComparison, named: bool = False) -> str:
    """The seed table with its notes, the paired comparisons, and the best group."""
    from lab2.core.describe import best_label, display_table, summary_notes

    which = "the groups you named" if named else "neighbours along lr and iterations, and the best group against every other"
    metric = comparison.pairs["metric"].iloc[0] if len(comparison.pairs) else "val_accuracy"
    return "\n".join([
        " MLP cells over seeds", table(display_table(comparison.summary)), *(f"  {note}" for note in summary_notes(comparison.summary)),
        "", f"Paired comparisons of {metric}, A − B seed by seed: {which}", pairs(comparison.pairs),
        "", f"Best group: {best_label(comparison)}",
    ])


def pairs(compared: pd.DataFrame) -> str:
    """The paired comparisons as a numbered table, what its columns mean, and each verdict."""
    from lab2.core.describe import pairs_display

    if compared.empty:
        return "  (no pairs to compare)"
    shown = pairs_display(compared)
    shown.insert(0, "#", range(1, len(shown) + 1))
    effect = compared["min_effect"].iloc[0]
    legend = (
        "  [low, high]: unadjusted 95% t interval (each verdict quotes its Holm step's interval); p_t: paired t-test; p_holm: Holm-adjusted over the "
        f"grid's {compared['family'].iloc[0]} comparisons; p_signflip: sign-flip test; P(A>B): share of seeds where A is higher (ties half);\n"
        "  seeds_80%: for a row not yet significant, seeds for 80% power at α/m if the true difference were the one seen "
        "(over the sd's 95% interval); "
        f"seeds_min_effect: for a difference of {effect:g}; seeds_ci_min_effect: for a 95% interval of ±{effect:g}."
    )
    verdicts = [f"  {k}. {verdict}" for k, verdict in enumerate(compared["verdict"], start=1)]
    return "\n".join([table(shown), legend, "Verdicts:", *verdicts])
