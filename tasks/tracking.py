"""Every MLflow call of lab2: parent and child runs, batched params/metrics/histories, figures.

Layout: one parent run per pipeline run (tag lab2.role=pipeline); one child run per unit of work
(tag lab2.step, mlflow.parentRunId). A child run is written whole — created, filled with one
batch, its figures logged, terminated — so a failure never leaves a half-written run behind.
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

import mlflow
import mlflow.pytorch
import pandas as pd
import torch
from matplotlib.figure import Figure
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
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


@functools.lru_cache(maxsize=8)
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


def log_torch_model(
    run_id: str, module: torch.nn.Module, input_example: torch.Tensor, registered_name: str
) -> ModelInfo:
    """Log `module` as an MLflow PyTorch model on the run, with signature and input example; register it
    as `registered_name` when the store has a model registry."""
    mlflow.set_tracking_uri(tracking_uri())
    example = input_example.numpy()
    with torch.no_grad():
        signature = infer_signature(example, module(input_example).numpy())
    log = functools.partial(
        mlflow.pytorch.log_model, module, name="model", run_id=run_id, signature=signature,
        input_example=example, pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    try:
        return log(registered_model_name=registered_name)
    except MlflowException as error:
        if "registry" not in str(error).lower():
            raise
        return log()


def latest_grid_run(experiment: str) -> str:
    """Id of the newest finished pipeline run of `experiment` that trained an MLP grid."""
    found = client().get_experiment_by_name(experiment)
    runs = [] if found is None else client().search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{ROLE_TAG}` = 'pipeline' and params.lrs LIKE '%' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise LookupError(f"no finished lab2 grid run in experiment {experiment!r} at {tracking_uri()}")
    return runs[0].info.run_id


def read_cells(parent_run_id: str) -> pd.DataFrame:
    """The MLP cells of a pipeline run, read back from MLflow: one row of params and metrics per cell."""
    try:
        parent = client().get_run(parent_run_id)
    except MlflowException:
        raise LookupError(f"no run {parent_run_id!r} at {tracking_uri()}") from None
    runs = client().search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`{STEP_TAG}` = 'mlp' and attributes.status = 'FINISHED'",
        max_results=50_000,
    )
    if not runs:
        raise LookupError(f"run {parent_run_id} has no finished MLP cells")
    frame = pd.DataFrame([{**r.data.params, **r.data.metrics} for r in runs])
    return frame.astype({"lr": float, "iterations": int, "seed": int, "diverged": bool})


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
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=64)
def _experiment_of(run_id: str) -> str:
    return client().get_run(run_id).info.experiment_id
