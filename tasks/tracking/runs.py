"""Writing runs: a parent run per pipeline run, child runs written whole, datasets, figures, text
files, descriptions and the winner model.

A child run is written whole — created, filled with one batch, its figures logged, terminated — so a
failure never leaves a half-written run behind.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path

import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import get_dataset_source_from_json
from mlflow.data.pandas_dataset import PandasDataset, from_pandas
from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.utils.git_utils import get_git_commit
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_MODEL_VERSIONS
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH
from sqlalchemy.exc import IntegrityError

from lab2.tasks.layout import (
    DATASET_LOADER_KEY,
    DESCRIPTION_MD,
    DESCRIPTION_TAG,
    ENV_TAG_PREFIX,
    FIGURES_FOLDER,
    GIT_COMMIT_TAG,
    IDENTITY_TAG,
    PARENT_TAG,
    PIPELINE_ROLE,
    ROLE_TAG,
    SERVED_MLP_JSON,
    STEP_TAG,
    figure_path,
)
from lab2.tasks.tracking.connection import (
    TrackingError,
    check_tracking_uri,
    client,
    experiment_id,
    experiment_of,
    retried,
    retrying,
    tracking_uri,
)
from lab2.tasks.tracking.owners import OWNER_TAG, create_run, owner

# the winner model's code, which MLflow copies into the model
SERVED_MLP = Path(__file__).with_name("served_mlp.py")


@dataclass
class RunRecord:
    """What one run logs: flat params, final metrics, per-step histories, tags, figures, text
    files."""

    params: Mapping[str, object] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    histories: Mapping[str, Mapping[int, float]] = field(default_factory=dict)  # step → value
    tags: Mapping[str, str] = field(default_factory=dict)
    figures: Mapping[str, bytes] = field(default_factory=dict)  # artifact name → PNG
    # context (training, validation) → dataset
    datasets: Mapping[str, PandasDataset] = field(default_factory=dict)
    # "" puts the figures at the root, where MLflow's compare page looks for common artifacts
    figure_folder: str = FIGURES_FOLDER
    texts: Mapping[str, str] = field(default_factory=dict)  # artifact file → its text (a CSV)


@contextmanager
def parent_run(experiment: str, run_name: str, record: RunRecord) -> Iterator[str]:
    """Open a parent run (after checking the tracking URI) and yield its id: FINISHED on success,
    FAILED on an error, KILLED when stopped (re-raised either way)."""
    check_tracking_uri(tracking_uri())
    exp_id = experiment_id(experiment)
    tags = {ROLE_TAG: PIPELINE_ROLE, OWNER_TAG: owner(), **environment_tags(), **record.tags}
    what = f"the parent run {run_name!r} of experiment {experiment!r}"
    run_id = create_run(exp_id, run_name, tags, what)
    try:
        log_to_run(run_id, RunRecord(params=record.params), what)
        yield run_id
    except BaseException as error:
        # KILLED: stopped (Ctrl-C, SIGTERM, a cancel); if MLflow is gone, a later close marks it
        end(run_id, "FAILED" if isinstance(error, Exception) else "KILLED", missing_ok=True)
        raise
    end(run_id, "FINISHED")


def log_child_run(parent_run_id: str, step: str, run_name: str, record: RunRecord) -> str:
    """Write one child run whole (its tags first); on any error delete what was written,
    re-raise."""
    what = f"child run {run_name!r} (step {step})"
    tags = {PARENT_TAG: parent_run_id, STEP_TAG: step, OWNER_TAG: owner(), **record.tags}
    run_id = create_run(experiment_of(parent_run_id), run_name, tags, what)
    try:
        log_to_run(run_id, replace(record, tags={}), what)
        end(run_id, "FINISHED")
    except BaseException:
        with suppress(TrackingError, MlflowException):  # if MLflow is gone, a later close kills it
            retrying(f"the deletion of {what}", lambda: client().delete_run(run_id))
        raise
    return run_id


def environment_tags() -> dict[str, str]:
    """What produced a run: git commit (inside a checkout), torch/prefect/mlflow versions, and
    torch's threads when this process computes with torch (a rerun with nothing to do does not
    load it)."""
    tags = {f"{ENV_TAG_PREFIX}{name}": version(name) for name in ("torch", "prefect", "mlflow")}
    if torch := sys.modules.get("torch"):
        tags[f"{ENV_TAG_PREFIX}torch_threads"] = str(torch.get_num_threads())
    commit = get_git_commit(str(Path(__file__).parent))
    return {**tags, GIT_COMMIT_TAG: commit} if commit else tags


def end(run_id: str, status: str, missing_ok: bool = False) -> None:
    """Terminate a run with `status`; with `missing_ok`, an MLflow that is gone is not an error."""
    try:
        retrying(f"the end of run {run_id}", lambda: client().set_terminated(run_id, status))
    except (TrackingError, MlflowException):
        if not missing_ok:
            raise


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
    retrying(
        f"params and metrics of {what}",
        lambda: client().log_batch(run_id, metrics=metrics, params=params, tags=tags),
    )
    if record.datasets:
        inputs = [
            DatasetInput(_dataset_entity(d), [InputTag(MLFLOW_DATASET_CONTEXT, c)])
            for c, d in record.datasets.items()
        ]
        retrying(f"datasets of {what}", lambda: client().log_inputs(run_id, datasets=inputs))
    if record.figures:
        log_pngs(run_id, record.figures, record.figure_folder or None)
    for path, text in record.texts.items():
        log_text(run_id, text, path)


def _dataset_entity(dataset: PandasDataset) -> Dataset:
    """The dataset as the entity a run's inputs hold, from its public description."""
    described = dataset.to_dict()
    return Dataset(
        described["name"],
        described["digest"],
        described["source_type"],
        described["source"],
        described.get("schema"),
        described.get("profile"),
    )


def _param_value(value: object) -> str:
    """A param as MLflow's flat text: a sequence as its values joined by commas
    ("0.1,0.01,0.001")."""
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def dataset(
    frame: pd.DataFrame, name: str, digest: str, source: str, targets: str | None
) -> PandasDataset:
    """An MLflow dataset: `frame` (features and targets), named and hashed by lab2, from a CSV path
    or a loader."""
    origin = (
        _local_file(source)
        if source.endswith(".csv")
        else CodeDatasetSource({DATASET_LOADER_KEY: source})
    )
    return from_pandas(frame, source=origin, targets=targets, name=name, digest=digest)


def _local_file(path: str) -> DatasetSource:
    """MLflow's source for a local file, built as MLflow reads one back: resolving the path string
    instead warns that two registered sources (both LocalArtifactDatasetSource) could read it."""
    return get_dataset_source_from_json(json.dumps({"uri": path}), source_type="local")


@dataclass(frozen=True)
class WinnerModel:
    """The winning cell as a model: what it is, where it was measured, and how to describe its
    version."""

    # the cell's model of raw rows (lab2.core.mlp.served_model); called only when no logged model
    # is it
    model: Callable[[], Mapping[str, object]]
    input_example: pd.DataFrame  # raw rows, the dataset's feature columns
    cell_run_id: str  # the cell's own run: its metrics become the model's
    identity: str  # the cell's unit identity; a registry version is made only for a new one
    params: Mapping[str, object]
    tags: Mapping[str, str]
    description: str
    # metric prefix (train, val) → the data it was measured on
    datasets: Mapping[str, PandasDataset]


def log_winner_model(parent_run_id: str, name: str, winner: WinnerModel) -> tuple[str, str]:
    """`winner` as logged model `name` in the parent's experiment, linked to the parent run and
    carrying its cell's metrics: the model an earlier run logged with the same identity and tags,
    else a new one; a registry version of `name` unless one already holds its identity. Returns
    the model's URI and its version."""
    what = f"logged model {name!r} of run {parent_run_id}"
    tags = {**winner.tags, IDENTITY_TAG: winner.identity}
    model_tags = {k: str(v) for k, v in {**tags, DESCRIPTION_TAG: winner.description}.items()}
    exp_id = experiment_of(parent_run_id)
    model_id = _same_model(exp_id, name, model_tags, what) or _new_model(
        exp_id, parent_run_id, name, winner, model_tags, what
    )
    retrying(
        what, lambda: client().log_outputs(parent_run_id, [LoggedModelOutput(model_id, step=0)])
    )
    return f"models:/{model_id}", _register_once(name, model_id, parent_run_id, winner, tags)


def _same_model(exp_id: str, name: str, model_tags: Mapping[str, str], what: str) -> str | None:
    """The id of a READY logged model `name` of the experiment with exactly these tags: the same
    unit, described alike."""
    query = f"name = '{name}' AND tags.`{IDENTITY_TAG}` = '{model_tags[IDENTITY_TAG]}'"
    found = retrying(
        what, lambda: client().search_logged_models(experiment_ids=[exp_id], filter_string=query)
    )
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
    """A new logged model of the winner: its weights, signature and requirements, its cell's
    metrics. Built before the model is created, and deleted again if writing it fails: no model
    is left half-written."""
    import mlflow.pyfunc

    spec = winner.model()
    mlflow.set_tracking_uri(tracking_uri())
    try:
        model = retrying(
            what,
            lambda: client().create_logged_model(
                exp_id,
                name,
                parent_run_id,
                tags=dict(model_tags),
                params={k: str(v) for k, v in winner.params.items()},
                model_type="classifier",
            ),
        )
        with tempfile.TemporaryDirectory() as folder:
            weights = Path(folder) / SERVED_MLP_JSON
            weights.write_text(json.dumps(spec))
            # MLflow infers the signature (named columns in, class and probabilities out) by
            # running the model on the example
            retrying(
                what,
                lambda: mlflow.pyfunc.log_model(
                    name=name,
                    python_model=str(SERVED_MLP),
                    artifacts={"mlp": str(weights)},
                    model_id=model.model_id,
                    input_example=winner.input_example,
                    pip_requirements=served_requirements(),
                ),
            )
        _link_cell_metrics(winner, model.model_id, what)
    except BaseException:
        # Also a model whose creation was cut short (a stop) before its id came back; if MLflow is
        # gone, it stays PENDING, and lab2 never reuses a model that is not READY.
        with suppress(TrackingError, MlflowException):
            _delete_pending_models(exp_id, name, parent_run_id)
        raise
    return model.model_id


def served_requirements() -> list[str]:
    """What the served model needs, pinned to this environment's versions (torch without its
    local build tag such as +cpu)."""
    return [f"{p}=={version(p).split('+')[0]}" for p in ("torch", "pandas", "mlflow")]


@retried("the unfinished models {name!r} of run {parent_run_id}")
def _delete_pending_models(exp_id: str, name: str, parent_run_id: str) -> None:
    query = f"name = '{name}'"
    for model in client().search_logged_models(experiment_ids=[exp_id], filter_string=query):
        if model.source_run_id == parent_run_id and model.status != LoggedModelStatus.READY:
            client().delete_logged_model(model.model_id)


def _link_cell_metrics(winner: WinnerModel, model_id: str, what: str) -> None:
    """The cell's final metrics, logged again unchanged with the model's id and the data each was
    measured on."""
    cell = retrying(what, lambda: client().get_run(winner.cell_run_id)).data.metrics
    linked = []
    for key in sorted(cell):
        data = next((d for prefix, d in winner.datasets.items() if key.startswith(prefix)), None)
        final = _final_metric(winner.cell_run_id, key)
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
    retrying(what, lambda: client().log_batch(winner.cell_run_id, metrics=linked))


@retried("the history of {key!r} of run {run_id}")
def _final_metric(run_id: str, key: str) -> Metric:
    history = client().get_metric_history(run_id, key)
    return max(history, key=lambda m: (m.step, m.timestamp))


def _register_once(
    name: str, model_id: str, run_id: str, winner: WinnerModel, tags: Mapping[str, str]
) -> str:
    """A new version of registered model `name` for the model, unless a version already carries its
    identity."""
    what = f"registered model {name!r}"
    existing = retrying(
        what,
        lambda: client().search_model_versions(
            f"name = '{name}' and tags.`{IDENTITY_TAG}` = '{winner.identity}'"
        ),
    )
    if existing:
        # the same unit: its weights are that version's
        version = max(existing, key=lambda v: int(v.version))
    else:
        try:
            retrying(
                what,
                lambda: client().create_registered_model(
                    name, description="lab2's MLP: the grid's best group, seed-0 model"
                ),
            )
        except MlflowException as error:
            if (
                error.error_code != "RESOURCE_ALREADY_EXISTS"
            ):  # else an earlier run (or a concurrent one) created it
                raise
        version = retrying(
            what,
            lambda: client().create_model_version(
                name,
                f"models:/{model_id}",
                run_id=run_id,
                tags={k: str(v) for k, v in tags.items()},
                description=winner.description,
                model_id=model_id,
            ),
        )
    # What the model page reads to show "Registered" (mlflow.register_model sets the same tag).
    listing = json.dumps([{"name": name, "version": version.version}])
    retrying(
        what, lambda: client().set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: listing})
    )
    return version.version


def log_pngs(run_id: str, pngs: Mapping[str, bytes], folder: str | None = FIGURES_FOLDER) -> None:
    """Images already drawn, as `folder/NAME.png` artifacts of the run (NAME.png with no folder), in
    one upload."""
    with tempfile.TemporaryDirectory(prefix="lab2-figures-") as local:
        for name, png in pngs.items():
            Path(local, figure_path(name, None)).write_bytes(png)
        retrying(f"figures of run {run_id}", lambda: client().log_artifacts(run_id, local, folder))


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    """A text artifact (a CSV table, an HTML page) on a run."""
    retrying(
        f"{artifact_file} of run {run_id}", lambda: client().log_text(run_id, text, artifact_file)
    )


def copy_artifact(source_run_id: str, path: str, target_run_id: str) -> None:
    """Copy one artifact file from a run to the same path on another run."""
    folder = str(Path(path).parent) if Path(path).parent != Path(".") else None

    def copy() -> None:
        local = client().download_artifacts(source_run_id, path)
        client().log_artifact(target_run_id, local, folder)

    retrying(f"{path} of run {target_run_id}", copy)


def set_description(run_id: str, markdown: str) -> None:
    """The run page's Description; one longer than a tag holds is cut at a paragraph, whole in
    description.md."""
    if len(markdown) > MAX_TAG_VAL_LENGTH:
        log_text(run_id, markdown, DESCRIPTION_MD)
        note = (
            "\n\n(Cut at MLflow's tag length; the whole description is the artifact "
            f"`{DESCRIPTION_MD}`.)"
        )
        room = MAX_TAG_VAL_LENGTH - len(note)
        cut = markdown.rfind("\n\n", 0, room)
        # one paragraph longer than a tag: cut inside it
        markdown = markdown[: cut if cut > 0 else room] + note
    retrying(
        f"the description of run {run_id}",
        lambda: client().set_tag(run_id, DESCRIPTION_TAG, markdown),
    )


@retried("the files of run {run_id}")
def log_folder(run_id: str, folder: Path) -> None:
    """Every file under `folder` as the run's artifacts, at the same paths."""
    client().log_artifacts(run_id, str(folder))


@retried("the models of run {run_id}")
def link_models(run_id: str, model_ids: list[str]) -> None:
    """Logged models as outputs of the run (the run's page lists them)."""
    client().log_outputs(run_id, [LoggedModelOutput(m, step=0) for m in model_ids])


def model_ready(model_id: str) -> bool:
    """Whether the logged model is there and READY (a model not READY is never reused)."""
    try:
        return _logged_model_status(model_id) == LoggedModelStatus.READY
    except MlflowException:
        return False


@retried("logged model {model_id}")
def _logged_model_status(model_id: str) -> LoggedModelStatus:
    return client().get_logged_model(model_id).status


@retried("the tags of run {run_id}")
def set_tags_once(run_id: str, tags: Mapping[str, str]) -> None:
    """Tags that a concurrent process may be setting to the same values at the same moment: a
    conflict is no error when the run then holds these values."""
    for key, value in tags.items():
        try:
            client().set_tag(run_id, key, value)
        except (MlflowException, IntegrityError):
            if client().get_run(run_id).data.tags.get(key) != value:
                raise


@retried("tag {key!r} of run {run_id}")
def delete_tag(run_id: str, key: str) -> None:
    """A run's tag removed (no error if a concurrent process removed it first)."""
    try:
        client().delete_tag(run_id, key)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
