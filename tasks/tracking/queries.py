"""Reading runs back: the latest grid run, its cells and units, histories, params and tags (for `lab2 compare`), and
what the lab report reads."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from mlflow.exceptions import MlflowException

from lab2.tasks.tracking.connection import client, experiment_of, redact, search_runs, tracking_uri
from lab2.tasks.tracking.links import run_link, run_url
from lab2.tasks.tracking.runs import PARAMS_KEY_TAG, ROLE_TAG, STEP_TAG, VAL_CORRECT_TAG

if TYPE_CHECKING:
    from lab2.core.lab_report import RunResults


class IncompleteRun(LookupError):
    """A run that lacks numbers the lab report needs."""

    def __init__(self, run_id: str, missing: list[str]) -> None:
        super().__init__(f"run {run_id} lacks what the report needs: {', '.join(missing)}")
        self.missing = missing


@dataclass(frozen=True)
class LabReport:
    """The lab report of a run: its markdown, its self-contained HTML, the figures the markdown links (path → PNG)."""

    run_id: str
    markdown: str
    html: str
    figures: dict[str, bytes]


def latest_grid_run(experiment: str) -> str:
    """Id of the newest finished pipeline run of `experiment` that trained an MLP grid."""
    found = client().get_experiment_by_name(experiment)
    runs = (
        []
        if found is None
        else client().search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = 'pipeline' and params.lrs LIKE '%' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    )
    if not runs:
        raise LookupError(
            f"no finished lab2 grid run in experiment {experiment!r} at {tracking_uri()}"
        )
    return runs[0].info.run_id


@dataclass(frozen=True)
class RecordedGrid:
    """The MLP cells of a pipeline run as MLflow holds them (a row of params and metrics per cell), and its
    validation rows (None for runs older than the param)."""

    frame: pd.DataFrame
    val_rows: int | None


def read_cells(parent_run_id: str) -> RecordedGrid:
    """The MLP cells of a pipeline run: those its `units/mlp_grid.csv` names (reused runs included), else its `mlp` children."""
    try:
        parent = client().get_run(parent_run_id)
    except MlflowException:
        raise LookupError(f"no run {parent_run_id!r} at {redact(tracking_uri())}") from None
    run_ids = _unit_run_ids(parent_run_id, "mlp_grid")
    if run_ids is None:
        query = f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`{STEP_TAG}` = 'mlp'"
    else:
        query = "attributes.run_id IN ({})".format(", ".join(f"'{r}'" for r in run_ids))
    runs = (
        search_runs(parent.info.experiment_id, f"{query} and attributes.status = 'FINISHED'")
        if run_ids != []
        else []
    )
    if not runs:
        raise LookupError(f"run {parent_run_id} has no finished MLP cells")
    derived = ("log10_lr",)  # a function of lr, for the UI's charts
    frame = pd.DataFrame(
        [
            {
                **{k: v for k, v in r.data.params.items() if k not in derived},
                **r.data.metrics,
                "diverged": r.data.tags.get("lab2.diverged") == "true",
                "val_correct": r.data.tags.get(VAL_CORRECT_TAG, ""),
            }  # "" for runs older than the tag
            for r in runs
        ]
    )
    val_rows = parent.data.params.get("val_rows")
    return RecordedGrid(
        frame.astype({"lr": float, "iterations": int, "seed": int, "diverged": bool}),
        int(val_rows) if val_rows else None,
    )


def _unit_run_ids(parent_run_id: str, flow_name: str) -> list[str] | None:
    """Run ids of the `mlp` units a parent lists in units/{flow_name}.csv; None if it lists none."""
    units = read_units(parent_run_id, flow_name)
    return None if units is None else units.loc[units["step"] == "mlp", "run_id"].tolist()


def read_units(parent_run_id: str, flow_name: str) -> pd.DataFrame | None:
    """The units table a parent run holds for a flow (units/{flow_name}.csv); None if it has none."""
    path = f"units/{flow_name}.csv"
    found = read_artifacts(parent_run_id, [path])
    return pd.read_csv(BytesIO(found[path])) if path in found else None


def read_artifacts(run_id: str, paths: list[str]) -> dict[str, bytes]:
    """The bytes of those of a run's artifacts (paths such as "units/mlp_grid.csv") it holds, by path."""
    folders = {str(Path(path).parent) for path in paths}
    held = {
        a.path
        for folder in folders
        for a in client(f"the files of run {run_id}").list_artifacts(
            run_id, None if folder == "." else folder
        )
    }
    with tempfile.TemporaryDirectory() as local:
        return {
            path: Path(client().download_artifacts(run_id, path, local)).read_bytes()
            for path in paths
            if path in held
        }


def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """Every (step, value) of a run's metric, by step."""
    history = client(f"the history of {key!r} of run {run_id}").get_metric_history(run_id, key)
    return sorted((m.step, m.value) for m in history)


def read_run_results(run_id: str) -> RunResults:
    """What the lab report reads from a lab2 parent run: its params, tables, figure paths and model, and its link in
    the MLflow UI (a server's page, else the route `lab2 ui` serves)."""
    from lab2.core.lab_report import (
        TABLES,
        RunResults,
    )  # the report's modules import torch; a rerun does not

    try:
        run = client().get_run(run_id)
    except MlflowException:
        raise LookupError(f"no run {run_id!r} at {redact(tracking_uri())}") from None
    tables = {
        name: pd.read_csv(BytesIO(table))
        for name, table in read_artifacts(run_id, list(TABLES)).items()
    }
    figures = [
        a.path for a in client().list_artifacts(run_id, "figures")
    ]  # none listed where there is no folder
    models = run.outputs.model_outputs if run.outputs else []
    link = run_url(run_id) or run_link(run_id, run.info.experiment_id)
    return RunResults(
        run_id,
        link,
        run.data.params,
        tables,
        figures,
        f"models:/{models[0].model_id}" if models else None,
    )


def lab_report_of(run_id: str) -> LabReport:
    """The lab report written from what a run holds; IncompleteRun naming each number it lacks."""
    from lab2.core.lab_report import lab_report, missing_numbers, report_html

    results = read_run_results(run_id)
    if missing := missing_numbers(results):
        raise IncompleteRun(run_id, missing)
    markdown = lab_report(results)
    figures = read_artifacts(run_id, [path for path in results.figures if f"({path})" in markdown])
    return LabReport(run_id, markdown, report_html(markdown, figures), figures)


def last_finished_run(run_id: str, params_key: str) -> str | None:
    """The last FINISHED pipeline run of `run_id`'s experiment with these parameters (PARAMS_KEY_TAG), `run_id` aside."""
    found = search_runs(
        experiment_of(run_id),
        f"tags.`{PARAMS_KEY_TAG}` = '{params_key}' and attributes.status = 'FINISHED'",
    )
    earlier = [r for r in found if r.info.run_id != run_id]
    return max(earlier, key=lambda r: r.info.end_time or 0).info.run_id if earlier else None


def run_history(experiment: str, last: int) -> pd.DataFrame:
    """The experiment's last `last` FINISHED pipeline runs, oldest first: started (UTC), run_id, verdict since the run
    before (tag lab2.watch; "" for runs older than it), best_val_accuracy (NaN where untagged) and cause."""
    from lab2.tasks.tracking.predecessors import BEST_TAG, CAUSE_TAG, WATCH_TAG

    found = client(f"experiment {experiment!r}").get_experiment_by_name(experiment)
    runs = (
        []
        if found is None
        else client().search_runs(
            [found.experiment_id],
            f"tags.`{ROLE_TAG}` = 'pipeline' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=last,
        )
    )
    if not runs:
        raise LookupError(
            f"no finished lab2 run in experiment {experiment!r} at {redact(tracking_uri())}"
        )
    rows = [
        {
            "started": pd.Timestamp(r.info.start_time, unit="ms", tz="UTC").strftime(
                "%Y-%m-%d %H:%M"
            ),
            "run_id": r.info.run_id,
            "verdict": r.data.tags.get(WATCH_TAG, ""),
            "best_val_accuracy": float(r.data.tags.get(BEST_TAG, "nan")),
            "cause": r.data.tags.get(CAUSE_TAG, ""),
        }
        for r in reversed(runs)
    ]
    return pd.DataFrame(rows)
