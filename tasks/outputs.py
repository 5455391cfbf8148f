"""What a parent run holds besides its children: Q1's and Q2's tables as CSVs, the seed statistics,
the summary figures, the winner model, the description and saved view, and the seed tables as
Prefect artifacts of the flow run people open."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, SupportsFloat, SupportsInt

import pandas as pd
from prefect import task
from prefect.artifacts import TableArtifact

from lab2.core.data import Dataset, labelled_frame
from lab2.core.describe import (
    best_label,
    cell_run_name,
    display_table,
    group_result,
    model_card,
    pairs_display,
    pipeline_description,
    summary_notes,
)
from lab2.core.mlp import MLPData, served_model, train_cells
from lab2.core.params import MLPSetup
from lab2.core.seeds import PAIR_METRIC, SeedComparison, group_label
from lab2.core.verdicts import caveat_notes, short_label
from lab2.tasks import tracking
from lab2.tasks.flow_run import flow_run_url, top_flow_run_id
from lab2.tasks.layout import (
    CELL_RUN_ID_TAG,
    CELL_TAG,
    FACTORISATION_CSV,
    GD_STEP,
    GROUP_TAG,
    GROUP_VAL_ACCURACY_TAG,
    MLP_CELLS_CSV,
    REGISTERED_MODEL,
    SEED_PAIRS_CSV,
    SEED_SUMMARY_CSV,
    SEED_SUMMARY_HTML,
    SVD_STEP,
)
from lab2.tasks.records import CellKey, cell_params, factorisation_group
from lab2.tasks.resume import Plan, record_units
from lab2.tasks.tracking import RunRecord, WinnerModel

if TYPE_CHECKING:
    from lab2.tasks.grid import GridCells

# seed_summary.html: numbers on one line each; the verdicts (the pair table's fourth column) read
# from the left.
HTML_STYLE = (
    "body{font-family:sans-serif;font-size:14px} table{border-collapse:collapse;margin-bottom:1em}"
    " td,th{border:1px solid #ccc;padding:3px 6px;white-space:nowrap;text-align:right}"
    " #pairs td:nth-child(4){text-align:left} li{max-width:60em}"
)


@dataclass(frozen=True)
class Winner:
    """The cell whose model lab2 publishes (the best group's smallest seed on the smallest split
    seed) and its model."""

    key: CellKey
    val_accuracy: float
    run_id: str  # the cell's run, computed now or reused
    model_uri: str

    @property
    def name(self) -> str:
        return cell_run_name(*self.key)


@task
def publish_factorisation(parent_run_id: str, summary: pd.DataFrame, units: pd.DataFrame) -> None:
    """Q1's table as factorisation.csv on the parent run (each loss is also the `loss` of its own
    child run; as metrics on the parent they would be the chart view's first, one-bar charts),
    and its units."""
    tracking.log_text(parent_run_id, summary.to_csv(index=False), FACTORISATION_CSV)
    record_units(parent_run_id, "factorisation", units)


@task
def publish_grid(
    parent_run_id: str,
    cells: pd.DataFrame,
    figures: Mapping[str, bytes],
    seeds: SeedComparison,
    split: MLPData,
    units: pd.DataFrame,
) -> None:
    """On the parent run: mlp_cells.csv, seed_summary.csv/.html, seed_pairs.csv, the summary figures
    (PNG bytes by name), the split's shape (rows, features, classes) as params, the units (no
    per-group metrics: MLflow's group-by on lab2.group averages the seeds itself); the seed tables
    as Prefect artifacts of the top flow run."""
    tracking.log_pngs(parent_run_id, figures)
    shape = {
        "train_rows": len(split.y_train),
        "val_rows": split.val_rows,
        "features": split.n_features,
        "classes": split.n_classes,
    }
    tracking.log_to_run(parent_run_id, RunRecord(params=shape))
    # each cell run's tag: a 0/1 string a CSV reader takes for a number
    cells = cells.drop(columns="val_correct", errors="ignore")
    for name, table in {
        MLP_CELLS_CSV: cells,
        SEED_SUMMARY_CSV: seeds.summary,
        SEED_PAIRS_CSV: seeds.pairs,
    }.items():
        tracking.log_text(parent_run_id, table.to_csv(index=False), name)
    tracking.log_text(parent_run_id, seed_summary_html(seeds), SEED_SUMMARY_HTML)
    record_units(parent_run_id, "mlp_grid", units)
    _publish_seed_tables(seeds)


def _publish_seed_tables(seeds: SeedComparison) -> None:
    """The seed table and the paired verdicts as Prefect table artifacts of the flow run a user
    opens: the top one (the verdicts' caveats, once, in the description)."""
    TableArtifact(
        key="seed-summary",
        table=display_table(seeds.summary).to_dict(orient="records"),
        description=f"MLP cells over seeds; best {best_label(seeds)}",
        flow_run_id=top_flow_run_id(),
    ).create()
    caveats = " ".join(caveat_notes(seeds.pairs.to_dict("records")))
    TableArtifact(
        key="seed-pairs",
        table=_pairs_for_reading(seeds.pairs, reasoning=True).to_dict(orient="records"),
        flow_run_id=top_flow_run_id(),
        description=(
            f"Groups compared seed by seed (A − B of {PAIR_METRIC}): the verdict, paired t, Holm, "
            f"sign-flip, seeds for 80% power; the reasoning last. {caveats}"
        ),
    ).create()


def seed_summary_html(seeds: SeedComparison) -> str:
    """The seed table, its notes and the paired comparisons as one HTML page, rounded for reading
    (the CSVs keep every digit): the verdicts in a column, their caveats once under the table, the
    reasoning of each after it."""
    notes = "".join(f"<li>{escape(note)}</li>" for note in summary_notes(seeds.summary))
    records = seeds.pairs.to_dict("records")
    pairs = _pairs_for_reading(seeds.pairs).to_html(index=False, table_id="pairs")
    caveats = "".join(f"<li>{escape(note)}</li>" for note in caveat_notes(records))
    reasons = "".join(f"<li>{escape(r['reasoning'])}</li>" for r in records)
    return (
        "<html><head><meta charset='utf-8'><title>lab2 seed "
        f"summary</title><style>{HTML_STYLE}</style></head><body>"
        "<h2>MLP cells over seeds</h2><p>Best group: "
        f"{best_label(seeds)}</p>{display_table(seeds.summary).to_html(index=False)}"
        f"<ul>{notes}</ul><h2>Paired comparisons ({PAIR_METRIC}, A − B, seed by seed)</h2>"
        f"{pairs}<ul>{caveats}</ul><h3>The reasoning</h3><ol>{reasons}</ol><h2>All "
        f"statistics</h2>{seeds.summary.to_html(index=False, float_format=lambda v: f'{v:.4g}')}"
        "</body></html>"
    )


def _pairs_for_reading(pairs: pd.DataFrame, reasoning: bool = False) -> pd.DataFrame:
    """The pair table rounded for reading (and with `reasoning`, the reasoning last)."""
    shown = pairs_display(pairs)
    if reasoning:
        shown["reasoning"] = pairs["reasoning"].to_numpy()
    return shown


@task
def log_winner(
    parent_run_id: str,
    seeds: SeedComparison,
    cells: GridCells,
    plan: Plan,
    setup: MLPSetup,
    split: MLPData,
    dataset: Dataset,
) -> Winner:
    """The best group's cell of the smallest seed on `setup`'s split as logged model lab2-mlp of the
    parent run, with the cell's metrics: the model an earlier run logged for the same cell and
    group, else the cell's weights (those trained now, or the cell trained again: deterministic,
    so identical to its run's) logged; a registry version only for a new winning unit."""
    best = seeds.best
    lr, iterations = best["lr"], best["iterations"]
    if not isinstance(lr, SupportsFloat) or not isinstance(iterations, SupportsInt):
        raise TypeError(f"the best group's lr and iterations are not numbers: {best}")
    key = (float(lr), int(iterations), int(cells.table["seed"].min()), setup.split_seed)
    row = cells.table.set_index(["lr", "iterations", "seed", "split_seed"]).loc[key]
    run_id = plan.run_ids(cells.written)[key]
    tracking.log_to_run(
        parent_run_id,
        RunRecord(
            params=dict(
                zip(
                    ("best_lr", "best_iterations", "best_seed", "best_split_seed"), key, strict=True
                )
            )
        ),
    )
    group = group_result(best)
    tags = {
        "lr": f"{key[0]:g}",
        "iterations": str(key[1]),
        "seed": str(key[2]),
        CELL_TAG: cell_run_name(*key),
        GROUP_TAG: group_label(cell_params(setup, *key[:3])),
        GROUP_VAL_ACCURACY_TAG: group,
        CELL_RUN_ID_TAG: run_id,
    }
    cell_run = (cell_run_name(*key), tracking.run_url(run_id) or tracking.run_link(run_id))
    description = model_card(
        key[:3], best, dataset, setup, split.val_rows, row["val_accuracy"], cell_run
    )

    def cell_model() -> dict[str, object]:
        # the weights trained now, else the cell trained again (deterministic)
        if key in cells.weights:
            return served_model(cells.weights[key], split, dataset)
        (cell,) = train_cells(split, [(key[0], key[2])], [key[1]], setup.hidden, setup.protocol)
        return served_model(cell.weights, split, dataset)

    datasets = {
        "train": cells.datasets[setup.split_seed]["training"],
        "val": cells.datasets[setup.split_seed]["validation"],
    }
    if split.val_index is None:
        raise ValueError("the split does not say which dataset rows it validates on")
    raw_rows = labelled_frame(dataset.features[split.val_index[:5]], dataset.columns())
    winner = WinnerModel(
        cell_model,
        raw_rows,
        run_id,
        plan.identities[key],
        cell_params(setup, *key[:3]),
        tags,
        description,
        datasets,
    )
    uri, _ = tracking.log_winner_model(parent_run_id, REGISTERED_MODEL, winner)
    return Winner(key, float(row["val_accuracy"]), run_id, uri)


@task
def describe_parent(
    parent_run_id: str,
    what_ran: Sequence[str],
    units: pd.DataFrame,
    factorisation: pd.DataFrame | None = None,
    seeds: SeedComparison | None = None,
    winner: Winner | None = None,
    since_last_run: str | None = None,
) -> str | None:
    """The parent run's description (what changed since the last run, what ran, the grid's table,
    the best group, its Prefect flow run, reused runs) and lab2's saved view of the runs table;
    returns the link to the runs in an MLflow server's UI."""
    exp_id = tracking.experiment_of(parent_run_id)  # every unit's run is in the parent's experiment
    reused = [(r.name, tracking.run_link(r.run_id, exp_id)) for r in units.itertuples() if r.reused]
    best_run = (winner.name, tracking.run_link(winner.run_id, exp_id)) if winner else None
    text = pipeline_description(
        what_ran, seeds, factorisation, flow_run_url(), reused, best_run, since_last_run
    )
    tracking.set_description(parent_run_id, text)
    labels = [short_label(group) for group in seeds.summary["group"]] if seeds else []
    labels += (
        [
            factorisation_group(step, m)
            for m in factorisation["matrix"]
            for step in (GD_STEP, SVD_STEP)
        ]
        if factorisation is not None
        else []
    )
    return tracking.runs_url(exp_id, tracking.set_runs_view(exp_id, labels))
