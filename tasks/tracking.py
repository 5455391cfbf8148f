"""Every MLflow call of lab2: parent and child runs, batched params/metrics/histories, figures.

Layout: one parent run per pipeline run (tag lab2.role=pipeline); one child run per unit of work
(tag lab2.step, mlflow.parentRunId). A child run is written whole — created, filled with one
batch, its figures logged, terminated — so a failure never leaves a half-written run behind.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

from matplotlib.figure import Figure
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID

DEFAULT_EXPERIMENT = "lab2"
ROLE_TAG = "lab2.role"
STEP_TAG = "lab2.step"
T = TypeVar("T")


@dataclass
class RunRecord:
    """What one run logs: flat params, final metrics, per-step histories, tags and figures."""

    params: Mapping[str, object] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    histories: Mapping[str, Sequence[float]] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    figures: Mapping[str, Figure] = field(default_factory=dict)  # artifact name → Figure


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else MLflow's default SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def ui_command(uri: str) -> str:
    """The command (or address) that opens the MLflow UI on `uri`."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


@lru_cache(maxsize=8)
def _client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def client() -> MlflowClient:
    """The MLflow client of the current tracking URI."""
    return _client(tracking_uri())


def experiment_id(name: str) -> str:
    """Id of experiment `name`, created if missing (safe when two processes race to create it)."""
    mlflow = client()
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return mlflow.create_experiment(name)
    except MlflowException:
        return mlflow.get_experiment_by_name(name).experiment_id


@contextmanager
def pipeline_run(experiment: str, run_name: str, record: RunRecord, attach_to: str | None = None) -> Iterator[str]:
    """Open the parent run and yield its id: FINISHED on success, FAILED (re-raised) on error.

    With `attach_to`, yield that run instead: a sub-flow inside a larger pipeline run.
    """
    if attach_to is not None:
        _link_flow_run(attach_to)
        yield attach_to
        return
    mlflow = client()
    tags = {ROLE_TAG: "pipeline", **_prefect_tags(), **environment_tags(), **record.tags}
    run_id = mlflow.create_run(experiment_id(experiment), run_name=run_name, tags=tags).info.run_id
    _link_flow_run(run_id)
    try:
        log_to_run(run_id, RunRecord(params=record.params, metrics=record.metrics, figures=record.figures))
        yield run_id
    except BaseException:
        mlflow.set_terminated(run_id, "FAILED")
        raise
    mlflow.set_terminated(run_id, "FINISHED")


def log_child_run(parent_run_id: str, step: str, run_name: str, record: RunRecord) -> str:
    """Write one child run whole; on any error delete what was written and re-raise."""
    mlflow = client()
    tags = {MLFLOW_PARENT_RUN_ID: parent_run_id, STEP_TAG: step, **record.tags}
    run_id = mlflow.create_run(_experiment_of(parent_run_id), run_name=run_name, tags=tags).info.run_id
    try:
        log_to_run(run_id, RunRecord(params=record.params, metrics=record.metrics, histories=record.histories, figures=record.figures))
        mlflow.set_terminated(run_id, "FINISHED")
    except BaseException:
        mlflow.delete_run(run_id)
        raise
    return run_id


def log_to_run(run_id: str, record: RunRecord) -> None:
    """Params, metrics and histories in batches (MLflow splits them at its limits), then figures."""
    now = int(time.time() * 1000)
    # A final value closes its history: logged at the step after the history's last one.
    metrics = [Metric(k, float(v), now, len(record.histories.get(k, ()))) for k, v in record.metrics.items()]
    metrics += [Metric(k, float(v), now, step) for k, values in record.histories.items() for step, v in enumerate(values)]
    params = [Param(k, str(v)) for k, v in record.params.items()]
    tags = [RunTag(k, str(v)) for k, v in record.tags.items()]
    client().log_batch(run_id, metrics=metrics, params=params, tags=tags)
    for name, figure in record.figures.items():
        client().log_figure(run_id, figure, f"figures/{name}.png")


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    """A text artifact (a CSV table, an HTML page) on a run."""
    client().log_text(run_id, text, artifact_file)


def run_url(run_id: str) -> str | None:
    """The MLflow UI page of a run, when the tracking URI is an MLflow server."""
    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{_experiment_of(run_id)}/runs/{run_id}"


def environment_tags() -> dict[str, str]:
    """What produced a run: git commit (inside a checkout), torch/prefect/mlflow versions, torch's threads."""
    import torch

    tags = {f"lab2.env.{name}": version(name) for name in ("torch", "prefect", "mlflow")}
    tags["lab2.env.torch_threads"] = str(torch.get_num_threads())
    commit = _git_commit()
    return {**tags, MLFLOW_GIT_COMMIT: commit} if commit else tags


def _prefect_tags() -> dict[str, str]:
    """The Prefect flow run this pipeline run belongs to; its deployment and UI page when a Prefect server is in use."""
    from prefect.runtime import deployment, flow_run
    from prefect.settings import PREFECT_UI_URL

    if flow_run.id is None:
        return {}
    tags = {"prefect.flow_run_id": flow_run.id, "prefect.flow_run_name": flow_run.name, "prefect.flow_name": flow_run.flow_name}
    if deployment.name is not None:
        tags |= {"prefect.deployment_name": deployment.name, "prefect.deployment_id": deployment.id}
    if PREFECT_UI_URL.value() is not None:
        tags["prefect.flow_run_url"] = flow_run.ui_url
    return tags


def _link_flow_run(run_id: str) -> None:
    """A Prefect artifact on the current flow run that leads to its MLflow parent run."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact
    from prefect.runtime import flow_run

    if flow_run.id is None:
        return
    url = run_url(run_id)
    description = "The MLflow parent run of this flow run"
    if url is not None:
        create_link_artifact(url, link_text=f"MLflow run {run_id}", key="mlflow-run", description=description)
    else:
        text = f"MLflow run `{run_id}` in `{tracking_uri()}`; browse it with `{ui_command(tracking_uri())}`."
        create_markdown_artifact(text, key="mlflow-run", description=description)


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@lru_cache(maxsize=64)
def _experiment_of(run_id: str) -> str:
    return client().get_run(run_id).info.experiment_id
