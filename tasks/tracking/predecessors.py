"""The run before: the last FINISHED pipeline run of the experiment with the same parameters, and a run judged
against it (lab2.core.watch): what went in differently, and whether the numbers moved."""

from __future__ import annotations

from io import BytesIO

import pandas as pd

from lab2.core.watch import (
    CELL,
    IDENTICAL,
    Inputs,
    SinceLastRun,
    compare_factorisation,
    compare_grid,
    input_changes,
)
from lab2.tasks.tracking.links import run_url
from lab2.tasks.tracking.queries import last_finished_run, read_artifacts
from lab2.tasks.tracking.runs import RunRecord, log_to_run

INPUTS_FILE = "inputs.json"  # what went into a parent run: code, data, environment
UNIT_TABLES = [
    "units/factorisation.csv",
    "units/mlp_grid.csv",
]  # each unit's name and run, as a parent run lists them
WATCH_TAG = "lab2.watch"  # the run's verdict since the last run with the same parameters ("first" without one)
PREDECESSOR_TAG = "lab2.watch.predecessor"
CAUSE_TAG = "lab2.watch.cause"  # what went in differently, in words ("" when nothing did)
BEST_TAG = "lab2.best_val_accuracy"  # the best group's mean val accuracy, for `lab2 history`


def since_last_run(
    run_id: str,
    params_key: str,
    inputs: Inputs,
    factorisation: pd.DataFrame,
    cells: pd.DataFrame,
    units: pd.DataFrame,
) -> SinceLastRun:
    """Run `run_id` (its inputs, Q1's table, the grid's cells, its units) against its predecessor: the causes, and each
    part whose units' runs are not the predecessor's judged on the numbers; recorded as tags lab2.watch and
    lab2.watch.predecessor."""
    predecessor = last_finished_run(run_id, params_key)
    if predecessor is None:
        since = SinceLastRun(None, new_units=len(units))
    else:
        held = read_artifacts(
            predecessor, [INPUTS_FILE, "factorisation.csv", "mlp_cells.csv", *UNIT_TABLES]
        )
        causes = (
            input_changes(Inputs.from_json(held[INPUTS_FILE].decode()), inputs)
            if INPUTS_FILE in held
            else ["the last run recorded no inputs"]
        )
        listed = pd.concat([_csv(held[t]) for t in UNIT_TABLES if t in held] or [units.iloc[:0]])
        before = dict(zip(listed["name"], listed["run_id"]))
        new = [
            name
            for name, unit_run in zip(units["name"], units["run_id"])
            if before.get(name) != unit_run
        ]
        changes = []
        if new and "factorisation.csv" in held:
            changes += compare_factorisation(
                _csv(held["factorisation.csv"]), factorisation, list(factorisation["matrix"])
            )
        if new and "mlp_cells.csv" in held:
            changes += compare_grid(
                _csv(held["mlp_cells.csv"]),
                cells,
                list(cells[CELL].itertuples(index=False, name=None)),
            )
        moved = [c for c in changes if c.verdict != IDENTICAL] or changes
        since = SinceLastRun(predecessor, causes, moved, len(new), run_url(predecessor))
    tags = {WATCH_TAG: "first"}
    if since.predecessor:
        tags = {
            WATCH_TAG: since.verdict,
            PREDECESSOR_TAG: since.predecessor,
            CAUSE_TAG: "; ".join(since.causes),
        }
    log_to_run(run_id, RunRecord(tags=tags))
    return since


def _csv(table: bytes) -> pd.DataFrame:
    return pd.read_csv(BytesIO(table))
