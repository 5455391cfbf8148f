"""Writing runs: one parent run per pipeline run, child runs written whole, datasets, figures, the winner model.

Layout: one parent run per pipeline run (tag lab2.role=pipeline); one child run per unit of work (tag
lab2.step, mlflow.parentRunId). A child run is written whole — created, filled with one batch, its
figures logged, terminated — so a failure never leaves a half-written run behind.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import mlflow.data
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.entities import (
    DatasetInput,
    InputTag,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import (
    MLFLOW_DATASET_CONTEXT,
    MLFLOW_MODEL_VERSIONS,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NOTE,
)
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from lab2.tasks.tracking.connection import (
    TrackingError,
    check_tracking_uri,
    client,
    experiment_id,
    experiment_of,
    retrying,
    tracking_uri,
)
from lab2.tasks.tracking.links import environment_tags, link_flow_run, prefect_tags
from lab2.tasks.tracking.owners import OWNER_TAG, create_run, owner

if TYPE_CHECKING:  # torch and mlflow.pytorch only for a new model: reading runs back (`lab2 compare`) needs neither
    import torch

ROLE_TAG = "lab2.role"


STEP_TAG = "lab2.step"


DESCRIPTION_TAG = MLFLOW_RUN_NOTE  # the run page's Description, markdown


IDENTITY_TAG = "lab2.identity"  # what a reused result is found by


PARAMS_KEY_TAG = "lab2.params_key"  # a pipeline run's axes and setup, hashed: the runs a watch compares (Lab2Params.params_key)
VAL_CORRECT_TAG = "lab2.val_correct"  # a cell's hits per validation row ("1"/"0", in row order): the rows' own noise


@dataclass
class RunRecord:
    """What one run logs: flat params, final metrics, per-step histories, tags, figures and text files."""

    params: Mapping[str, object] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    histories: Mapping[str, Mapping[int, float]] = field(
        default_factory=dict
    )  # metric → step → value
    tags: Mapping[str, str] = field(default_factory=dict)
    figures: Mapping[str, bytes] = field(default_factory=dict)  # artifact name → PNG
    datasets: Mapping[str, PandasDataset] = field(
        default_factory=dict
    )  # context (training, validation) → dataset
    figure_folder: str = "figures"  # "" puts them at the root, where MLflow's compare page looks for common artifacts
    texts: Mapping[str, str] = field(default_factory=dict)  # artifact file → its text (a CSV)


@contextmanager
def parent_run(experiment: str, run_name: str, record: RunRecord) -> Iterator[str]:
    """Open a parent run (after checking the tracking URI) and yield its id: FINISHED on success, FAILED on an error,
    KILLED when stopped (re-raised either way); the current Prefect flow run gets an artifact linking it."""
    check_tracking_uri(tracking_uri())
    exp_id = experiment_id(experiment)
    tags = {
        ROLE_TAG: "pipeline",
        OWNER_TAG: owner(),
        **prefect_tags(),
        **environment_tags(),
        **record.tags,
    }
    what = f"the parent run {run_name!r} of experiment {experiment!r}"
    run_id = create_run(exp_id, run_name, tags, what)
    link_flow_run(run_id)
    try:
        log_to_run(run_id, RunRecord(params=record.params), what)
        yield run_id
    except BaseException as error:
        status = (
            "FAILED" if isinstance(error, Exception) else "KILLED"
        )  # KILLED: stopped (Ctrl-C, SIGTERM, a cancel)
        with suppress(
            TrackingError, MlflowException
        ):  # if MLflow is gone, a later close marks it KILLED
            client(f"the end of {what}").set_terminated(run_id, status)
        raise
    client(f"the end of {what}").set_terminated(run_id, "FINISHED")


def log_child_run(parent_run_id: str, step: str, run_name: str, record: RunRecord) -> str:
    """Write one child run whole (its tags first); on any error delete what was written and re-raise."""
    what = f"child run {run_name!r} (step {step})"
    tags = {MLFLOW_PARENT_RUN_ID: parent_run_id, STEP_TAG: step, OWNER_TAG: owner(), **record.tags}
    run_id = create_run(experiment_of(parent_run_id), run_name, tags, what)
    try:
        log_to_run(run_id, replace(record, tags={}), what)
        client(what).set_terminated(run_id, "FINISHED")
    except BaseException:
        with suppress(
            TrackingError, MlflowException
        ):  # if MLflow is gone, a later close marks it KILLED
            client(f"the deletion of {what}").delete_run(run_id)
        raise
    return run_id


def log_to_run(run_id: str, record: RunRecord, what: str | None = None) -> None:
    """Params, metrics and histories in batches (MLflow splits them at its limits), then figures."""
    what = what or f"run {run_id}"
    now = int(time.time() * 1000)
    # A final value closes its history: logged at the step after the history's last one.
    metrics = [
        Metric(k, float(v), now, max(record.histories.get(k, {-1: 0})) + 1)
        for k, v in record.metrics.items()
    ]
    metrics += [
        Metric(k, float(v), now, step)
        for k, values in record.histories.items()
        for step, v in values.items()
    ]
    params = [Param(k, _param_value(v)) for k, v in record.params.items() if v is not None]
    tags = [RunTag(k, str(v)) for k, v in record.tags.items()]
    client(f"params and metrics of {what}").log_batch(
        run_id, metrics=metrics, params=params, tags=tags
    )
    if record.datasets:
        inputs = [
            DatasetInput(d._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, c)])
            for c, d in record.datasets.items()
        ]
        client(f"datasets of {what}").log_inputs(run_id, datasets=inputs)
    if record.figures:
        log_pngs(run_id, record.figures, record.figure_folder or None)
    for path, text in record.texts.items():
        client(f"{path} of {what}").log_text(run_id, text, path)


def _param_value(value: object) -> str:
    """A param as MLflow's flat text: a sequence as its values joined by commas ("0.1,0.01,0.001")."""
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def dataset(
    frame: pd.DataFrame, name: str, digest: str, source: str, targets: str
) -> PandasDataset:
    """An MLflow dataset: `frame` (features and targets), named and hashed by lab2, from a CSV path or a loader."""
    origin = source if source.endswith(".csv") else CodeDatasetSource({"lab2.loader": source})
    return mlflow.data.from_pandas(frame, source=origin, targets=targets, name=name, digest=digest)


@dataclass(frozen=True)
class WinnerModel:
    """The winning cell as a model: what it is, where it was measured, and how to describe its version."""

    model: Callable[[], torch.nn.Module]  # the cell's model; called only when no logged model is it
    input_example: torch.Tensor
    cell_run_id: str  # the cell's own run: its metrics become the model's
    identity: str  # the cell's unit identity; a registry version is made only for a new one
    params: Mapping[str, object]
    tags: Mapping[str, str]
    description: str
    datasets: Mapping[
        str, PandasDataset
    ]  # metric prefix (train, val) → the data it was measured on


def log_winner_model(parent_run_id: str, name: str, winner: WinnerModel) -> tuple[str, str]:
    """`winner` as logged model `name` in the parent's experiment, linked to the parent run and carrying its
    cell's metrics: the model an earlier run logged with the same identity and tags, else a new one; a
    registry version of `name` unless one already holds its identity. Returns the model's URI and its version."""
    what = f"logged model {name!r} of run {parent_run_id}"
    tags = {**winner.tags, IDENTITY_TAG: winner.identity}
    model_tags = {k: str(v) for k, v in {**tags, DESCRIPTION_TAG: winner.description}.items()}
    exp_id = experiment_of(parent_run_id)
    model_id = _same_model(exp_id, name, model_tags, what) or _new_model(
        exp_id, parent_run_id, name, winner, model_tags, what
    )
    client(what).log_outputs(parent_run_id, [LoggedModelOutput(model_id, step=0)])
    return f"models:/{model_id}", _register_once(name, model_id, parent_run_id, winner, tags)


def _same_model(exp_id: str, name: str, model_tags: Mapping[str, str], what: str) -> str | None:
    """The id of a READY logged model `name` of the experiment with exactly these tags: the same unit, described alike."""
    query = f"name = '{name}' AND tags.`{IDENTITY_TAG}` = '{model_tags[IDENTITY_TAG]}'"
    found = client(what).search_logged_models(experiment_ids=[exp_id], filter_string=query)
    same = [
        m
        for m in found
        if m.status == LoggedModelStatus.READY
        and all(m.tags.get(k) == v for k, v in model_tags.items())
    ]
    return min(same, key=lambda m: m.creation_timestamp).model_id if same else None


def _new_model(
    exp_id: str,
    parent_run_id: str,
    name: str,
    winner: WinnerModel,
    model_tags: Mapping[str, str],
    what: str,
) -> str:
    """A new logged model of the winner: its weights, signature and requirements, its cell's metrics.
    Built before the model is created, and deleted again if writing it fails: no model is left half-written."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    module = winner.model()
    example = winner.input_example.numpy()
    with torch.no_grad():
        signature = infer_signature(example, module(winner.input_example).numpy())
    mlflow.set_tracking_uri(tracking_uri())
    try:
        model = client(what).create_logged_model(
            exp_id,
            name,
            parent_run_id,
            tags=dict(model_tags),
            params={k: str(v) for k, v in winner.params.items()},
            model_type="classifier",
        )
        retrying(
            what,
            lambda: mlflow.pytorch.log_model(
                module,
                name=name,
                model_id=model.model_id,
                signature=signature,
                input_example=example,
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            ),
        )
        _link_cell_metrics(winner, model.model_id, what)
    except BaseException:
        # Also a model whose creation was cut short (a stop) before its id came back; if MLflow is gone, it stays
        # PENDING, and lab2 never reuses a model that is not READY.
        with suppress(TrackingError, MlflowException):
            for pending in client(what).search_logged_models(
                experiment_ids=[exp_id], filter_string=f"name = '{name}'"
            ):
                if (
                    pending.source_run_id == parent_run_id
                    and pending.status != LoggedModelStatus.READY
                ):
                    client(f"the deletion of {what}").delete_logged_model(pending.model_id)
        raise
    return model.model_id


def _link_cell_metrics(winner: WinnerModel, model_id: str, what: str) -> None:
    """The cell's final metrics, logged again unchanged with the model's id and the data each was measured on."""
    cell = client(what).get_run(winner.cell_run_id).data.metrics
    linked = []
    for key in sorted(cell):
        data = next((d for prefix, d in winner.datasets.items() if key.startswith(prefix)), None)
        history = client(what).get_metric_history(winner.cell_run_id, key)
        final = max(history, key=lambda m: (m.step, m.timestamp))
        linked.append(
            Metric(
                key,
                final.value,
                final.timestamp,
                final.step,
                model_id=model_id,
                dataset_name=data.name if data else None,
                dataset_digest=data.digest if data else None,
            )
        )
    client(what).log_batch(winner.cell_run_id, metrics=linked)


def _register_once(
    name: str, model_id: str, run_id: str, winner: WinnerModel, tags: Mapping[str, str]
) -> str:
    """A new version of registered model `name` for the model, unless a version already carries its identity."""
    what = f"registered model {name!r}"
    existing = client(what).search_model_versions(
        f"name = '{name}' and tags.`{IDENTITY_TAG}` = '{winner.identity}'"
    )
    if existing:
        version = max(
            existing, key=lambda v: int(v.version)
        )  # the same unit: its weights are that version's
    else:
        try:
            client(what).create_registered_model(
                name, description="lab2's MLP: the grid's best group, seed-0 model"
            )
        except MlflowException as error:
            if (
                error.error_code != "RESOURCE_ALREADY_EXISTS"
            ):  # else an earlier run (or a concurrent one) created it
                raise
        version = client(what).create_model_version(
            name,
            f"models:/{model_id}",
            run_id=run_id,
            tags={k: str(v) for k, v in tags.items()},
            description=winner.description,
            model_id=model_id,
        )
    # What the model page reads to show "Registered" (mlflow.register_model sets the same tag).
    listing = json.dumps([{"name": name, "version": version.version}])
    client(what).set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: listing})
    return version.version


def log_pngs(run_id: str, pngs: Mapping[str, bytes], folder: str | None = "figures") -> None:
    """Images already drawn, as `folder/NAME.png` artifacts of the run (NAME.png with no folder), in one upload."""
    with tempfile.TemporaryDirectory(prefix="lab2-figures-") as local:
        for name, png in pngs.items():
            Path(local, f"{name}.png").write_bytes(png)
        client(f"figures of run {run_id}").log_artifacts(run_id, local, folder)


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    """A text artifact (a CSV table, an HTML page) on a run."""
    client(f"{artifact_file} of run {run_id}").log_text(run_id, text, artifact_file)


def copy_artifact(source_run_id: str, path: str, target_run_id: str) -> None:
    """Copy one artifact file from a run to the same path on another run."""
    folder = str(Path(path).parent) if Path(path).parent != Path(".") else None

    def copy() -> None:
        local = client().download_artifacts(source_run_id, path)
        client().log_artifact(target_run_id, local, folder)

    retrying(f"{path} of run {target_run_id}", copy)


def set_description(run_id: str, markdown: str) -> None:
    """The run page's Description; one longer than a tag holds is cut at a paragraph, whole in description.md."""
    if len(markdown) > MAX_TAG_VAL_LENGTH:
        log_text(run_id, markdown, "description.md")
        note = "\n\n(Cut at MLflow's tag length; the whole description is the artifact `description.md`.)"
        room = MAX_TAG_VAL_LENGTH - len(note)
        cut = markdown.rfind("\n\n", 0, room)
        markdown = (
            markdown[: cut if cut > 0 else room] + note
        )  # one paragraph longer than a tag: cut inside it
    client(f"the description of run {run_id}").set_tag(run_id, DESCRIPTION_TAG, markdown)
