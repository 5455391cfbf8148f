"""Reading runs back: a run, its files, its metric histories; the latest grid run and its cells; the
last run with the same parameters; the experiment's recent pipeline runs."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from lab2.tasks.layout import (
    BEST_TAG,
    CAUSE_TAG,
    DIVERGED_TAG,
    MLP_STEP,
    PARAMS_KEY_TAG,
    PARENT_TAG,
    PIPELINE_ROLE,
    ROLE_TAG,
    STEP_TAG,
    VAL_CORRECT_TAG,
    WATCH_TAG,
    units_csv,
)
from lab2.tasks.tracking.connection import (
    client,
    experiment_of,
    find_experiment,
    redact,
    retried,
    search_runs,
    tracking_uri,
)

_FINISHED_PIPELINES = f"tags.`{ROLE_TAG}` = '{PIPELINE_ROLE}' and attributes.status = 'FINISHED'"


def read_run(run_id: str) -> Run:
    """A run; LookupError if the store has none of this id."""
    try:
        return _get_run(run_id)
    except MlflowException:
        raise LookupError(f"no run {run_id!r} at {redact(tracking_uri())}") from None


@retried("run {run_id}")
def _get_run(run_id: str) -> Run:
    return client().get_run(run_id)


def latest_grid_run(experiment: str) -> str:
    """Id of the newest finished pipeline run of `experiment` that trained an MLP grid."""
    exp_id = find_experiment(experiment)
    query = f"{_FINISHED_PIPELINES} and params.lrs LIKE '%'"
    runs = [] if exp_id is None else _newest(exp_id, query, 1)
    if not runs:
        raise LookupError(
            f"no finished lab2 grid run in experiment {experiment!r} at {tracking_uri()}"
        )
    return runs[0].info.run_id


@dataclass(frozen=True)
class RecordedGrid:
    """The MLP cells of a pipeline run as MLflow holds them (a row of params and metrics per cell),
    and its validation rows (None for runs older than the param)."""

    frame: pd.DataFrame
    val_rows: int | None


def read_cells(parent_run_id: str) -> RecordedGrid:
    """The MLP cells of a pipeline run: those its units table names (reused runs included), else
    its `mlp` children."""
    parent = read_run(parent_run_id)
    run_ids = _unit_run_ids(parent_run_id, "mlp_grid")
    if run_ids is None:
        query = f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{STEP_TAG}` = '{MLP_STEP}'"
    else:
        query = "attributes.run_id IN ({})".format(", ".join(f"'{r}'" for r in run_ids))
    finished = f"{query} and attributes.status = 'FINISHED'"
    runs = search_runs(parent.info.experiment_id, finished) if run_ids != [] else []
    if not runs:
        raise LookupError(f"run {parent_run_id} has no finished MLP cells")
    derived = ("log10_lr",)  # a function of lr, for the UI's charts
    frame = pd.DataFrame(
        [
            {
                **{k: v for k, v in r.data.params.items() if k not in derived},
                **r.data.metrics,
                "diverged": r.data.tags.get(DIVERGED_TAG) == "true",
                "val_correct": r.data.tags.get(VAL_CORRECT_TAG, ""),  # "" for older runs
            }
            for r in runs
        ]
    )
    val_rows = parent.data.params.get("val_rows")
    return RecordedGrid(
        frame.astype({"lr": float, "iterations": int, "seed": int, "diverged": bool}),
        int(val_rows) if val_rows else None,
    )


def _unit_run_ids(parent_run_id: str, flow_name: str) -> list[str] | None:
    """Run ids of the `mlp` units a parent lists in its units table; None if it lists none."""
    units = read_units(parent_run_id, flow_name)
    return None if units is None else units.loc[units["step"] == MLP_STEP, "run_id"].tolist()


def read_units(parent_run_id: str, flow_name: str) -> pd.DataFrame | None:
    """The units table a parent run holds for a flow; None if it has none."""
    path = units_csv(flow_name)
    found = read_artifacts(parent_run_id, [path])
    return pd.read_csv(BytesIO(found[path])) if path in found else None


def read_artifacts(run_id: str, paths: list[str]) -> dict[str, bytes]:
    """The bytes of those of a run's artifacts (paths such as "units/mlp_grid.csv") it holds."""
    folders = {str(Path(path).parent) for path in paths}
    held = {path for folder in folders for path in list_artifacts(run_id, folder)}
    with tempfile.TemporaryDirectory() as local:
        return {
            path: Path(download_artifact(run_id, path, local)).read_bytes()
            for path in paths
            if path in held
        }


@retried("the files of run {run_id}")
def list_artifacts(run_id: str, folder: str = ".") -> list[str]:
    """The paths of a run's files in `folder` ("." for its root); none where there is no folder."""
    listed = client().list_artifacts(run_id, None if folder == "." else folder)
    return [a.path for a in listed]


@retried("{path} of run {run_id}")
def download_artifact(run_id: str, path: str, folder: str) -> str:
    """A run's file or folder ("" for all of them) downloaded into `folder`; its local path."""
    return client().download_artifacts(run_id, path, folder)


@retried("the history of {key!r} of run {run_id}")
def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """Every (step, value) of a run's metric, by step."""
    return sorted((m.step, m.value) for m in client().get_metric_history(run_id, key))


def last_finished_run(run_id: str, params_key: str) -> str | None:
    """The last FINISHED pipeline run of `run_id`'s experiment with these parameters, `run_id`
    aside."""
    query = f"tags.`{PARAMS_KEY_TAG}` = '{params_key}' and attributes.status = 'FINISHED'"
    earlier = [r for r in search_runs(experiment_of(run_id), query) if r.info.run_id != run_id]
    return max(earlier, key=lambda r: r.info.end_time or 0).info.run_id if earlier else None


def run_history(experiment: str, last: int) -> pd.DataFrame:
    """The experiment's last `last` FINISHED pipeline runs, oldest first: started (UTC), run_id,
    verdict since the run before ("" for runs older than it), best_val_accuracy (NaN where
    untagged) and cause."""
    exp_id = find_experiment(experiment)
    runs = [] if exp_id is None else _newest(exp_id, _FINISHED_PIPELINES, last)
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


def _newest(exp_id: str, query: str, count: int) -> list[Run]:
    """The `count` newest runs of the experiment that `query` matches, newest first."""
    return search_runs(exp_id, query, order_by=["attributes.start_time DESC"], max_results=count)
