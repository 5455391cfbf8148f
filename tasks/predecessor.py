"""The run before: the last FINISHED pipeline run of the experiment with the same parameters, and a
run judged against it (lab2.core.watch): what went in differently, and whether the numbers moved.

No Prefect here: a rerun with nothing to do judges itself without loading Prefect (the watch's
Prefect side, its artifact, state and event, is `lab2.tasks.watch`).
"""

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
from lab2.tasks import tracking
from lab2.tasks.layout import (
    CAUSE_TAG,
    FACTORISATION_CSV,
    INPUTS_JSON,
    MLP_CELLS_CSV,
    PREDECESSOR_TAG,
    UNITS_CSVS,
    WATCH_TAG,
)


def since_last_run(
    run_id: str,
    params_key: str,
    inputs: Inputs,
    factorisation: pd.DataFrame,
    cells: pd.DataFrame,
    units: pd.DataFrame,
) -> SinceLastRun:
    """Run `run_id` (its inputs, Q1's table, the grid's cells, its units) against its predecessor:
    the causes, and each part whose units' runs are not the predecessor's judged on the numbers;
    recorded as the run's watch tags."""
    predecessor = tracking.last_finished_run(run_id, params_key)
    if predecessor is None:
        since = SinceLastRun(None, new_units=len(units))
    else:
        since = _against(predecessor, inputs, factorisation, cells, units)
    tags = {WATCH_TAG: "first"}
    if since.predecessor:
        tags = {
            WATCH_TAG: since.verdict,
            PREDECESSOR_TAG: since.predecessor,
            CAUSE_TAG: "; ".join(since.causes),
        }
    tracking.log_to_run(run_id, tracking.RunRecord(tags=tags))
    return since


def _against(
    predecessor: str,
    inputs: Inputs,
    factorisation: pd.DataFrame,
    cells: pd.DataFrame,
    units: pd.DataFrame,
) -> SinceLastRun:
    held = tracking.read_artifacts(
        predecessor, [INPUTS_JSON, FACTORISATION_CSV, MLP_CELLS_CSV, *UNITS_CSVS]
    )
    causes = (
        input_changes(Inputs.from_json(held[INPUTS_JSON].decode()), inputs)
        if INPUTS_JSON in held
        else ["the last run recorded no inputs"]
    )
    listed = pd.concat([_csv(held[t]) for t in UNITS_CSVS if t in held] or [units.iloc[:0]])
    before = dict(zip(listed["name"], listed["run_id"], strict=True))
    new = [
        name
        for name, unit_run in zip(units["name"], units["run_id"], strict=True)
        if before.get(name) != unit_run
    ]
    changes = []
    if new and FACTORISATION_CSV in held:
        matrices = list(factorisation["matrix"])
        changes += compare_factorisation(_csv(held[FACTORISATION_CSV]), factorisation, matrices)
    if new and MLP_CELLS_CSV in held:
        keys = list(cells[CELL].itertuples(index=False, name=None))
        changes += compare_grid(_csv(held[MLP_CELLS_CSV]), cells, keys)
    moved = [c for c in changes if c.verdict != IDENTICAL] or changes
    return SinceLastRun(predecessor, causes, moved, len(new), tracking.run_url(predecessor))


def _csv(table: bytes) -> pd.DataFrame:
    return pd.read_csv(BytesIO(table))
