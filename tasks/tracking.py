"""Every MLflow call of lab2: parent and child runs, batched params/metrics/histories, figures.

Layout: one parent run per pipeline run (tag lab2.role=pipeline); one child run per unit of work
(tag lab2.step, mlflow.parentRunId). A child run is written whole — created, filled with one
batch, its figures logged, terminated — so a failure never leaves a half-written run behind.

Resume: a child run carries its unit's identity (tag lab2.identity); a FINISHED run of that identity
is reused instead of recomputed, and a newer finished run of an identity takes the tag from an
older one (lab2.superseded_by), so one finished run per identity carries it. Every run carries its
owner process (tag lab2.owner); a RUNNING run whose owner is gone is marked KILLED on the next start.

Faults: every call is retried with exponential backoff on transient errors (connection refused or
reset, timeouts, HTTP 502/503/504, SQLite "database is locked", a store whose tables another process is creating) for LAB2_TRACKING_RETRY_SECONDS
(default 60), then fails with a TrackingError naming the tracking URI (credentials redacted) and
what was not logged.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

try:
    import fcntl
except ImportError:  # not POSIX: no lock around store creation
    fcntl = None

import mlflow
import mlflow.data
import mlflow.pytorch
import pandas as pd
import psutil
import requests
import torch
from matplotlib.figure import Figure
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.entities import DatasetInput, InputTag, LoggedModelOutput, Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import (
    MLFLOW_DATASET_CONTEXT,
    MLFLOW_GIT_COMMIT,
    MLFLOW_MODEL_VERSIONS,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NOTE,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from lab2core.params import InputError

DEFAULT_EXPERIMENT = "lab2"
ROLE_TAG = "lab2.role"
STEP_TAG = "lab2.step"
IDENTITY_TAG = "lab2.identity"
OWNER_TAG = "lab2.owner"
SUPERSEDED_TAG = "lab2.superseded_by"
CREATE_TOKEN_TAG = "lab2.create_token"
DESCRIPTION_TAG = MLFLOW_RUN_NOTE  # the run page's Description, markdown
# MLflow 3.17 opens an experiment on its GenAI overview unless the link asks for the training runs.
UI_QUERY = "?workflowType=machine_learning"
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default
VIEW_TAG = "mlflow.sharedViewState."  # MLflow's saved views of a runs table, one experiment tag each
RETRY_SECONDS_ENV = "LAB2_TRACKING_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 60.0
KNOWN_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql")
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME")
_TRANSIENT = re.compile(
    r"database is locked|Max retries exceeded|Connection refused|Connection aborted|Connection reset"
    r"|Connection broken|IncompleteRead|RemoteDisconnected|timed out|error code 50[234]|TEMPORARILY_UNAVAILABLE"
    # Two threads logging one dataset both insert it; a retry finds the row the other one wrote.
    r"|UNIQUE constraint failed: datasets\.|duplicate key value violates unique constraint \"?datasets"
)
T = TypeVar("T")


class TrackingError(RuntimeError):
    """MLflow did not answer within the retry window: names the tracking URI and what was not logged."""


@dataclass
class RunRecord:
    """What one run logs: flat params, final metrics, per-step histories, tags and figures."""

    params: Mapping[str, object] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    histories: Mapping[str, Sequence[float]] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    figures: Mapping[str, Figure] = field(default_factory=dict)  # artifact name → Figure
    datasets: Mapping[str, PandasDataset] = field(default_factory=dict)  # context (training, validation) → dataset
    figure_folder: str = "figures"  # "" puts them at the root, where MLflow's compare page looks for common artifacts


@dataclass(frozen=True)
class FinishedRun:
    """A FINISHED run found for a unit's identity: its id, final metrics and tags."""

    run_id: str
    metrics: Mapping[str, float]
    tags: Mapping[str, str] = field(default_factory=dict)


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else MLflow's default SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def ui_command(uri: str) -> str:
    """The command (or address) that opens the MLflow UI on `uri`, credentials redacted."""
    if uri.startswith(("http://", "https://")):
        return f"open {redact(uri)} in a browser"
    return f"mlflow ui --backend-store-uri {redact(uri)}"


def redact(text: str) -> str:
    """`text` with URL credentials, secret query values and lab2's secret env values replaced by ***."""
    text = re.sub(r"://[^/\s@]+@", "://***@", text)
    text = re.sub(r"(?i)\b((?:password|passwd|token|secret|api_key|access_key)=)[^&\s]+", r"\1***", text)
    for name in SECRET_ENV[:2]:
        if value := os.environ.get(name):
            text = text.replace(value, "***")
    return text


def check_tracking_uri(uri: str) -> None:
    """Raise InputError unless `uri` has a known scheme and its store can be reached (an http server answers)."""
    shown = redact(uri)
    try:
        parts = urlsplit(uri)
        parts.port  # raises ValueError on a malformed port
    except ValueError as error:
        raise InputError(f"tracking URI {shown} is malformed ({error}); use sqlite:///PATH or http://HOST:PORT") from None
    scheme = parts.scheme.split("+")[0]
    if scheme not in KNOWN_SCHEMES:
        raise InputError(f"tracking URI {shown}: unknown scheme {parts.scheme!r}; use one of {', '.join(KNOWN_SCHEMES)}")
    if scheme in ("http", "https"):
        _check_server(uri, shown, parts.hostname)
    elif scheme in ("sqlite", "file"):
        _check_local_store(uri, shown, parts.path)


def _check_server(uri: str, shown: str, host: str | None) -> None:
    if not host:
        raise InputError(f"tracking URI {shown} names no host; use http://HOST:PORT")
    try:
        requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
    except requests.RequestException as error:
        reason = type(error).__name__
        raise InputError(
            f"tracking URI {shown}: no MLflow server answers there ({reason}); start one "
            "(mlflow server --host 127.0.0.1 --port PORT) or unset MLFLOW_TRACKING_URI"
        ) from None


def _check_local_store(uri: str, shown: str, path: str) -> None:
    if uri.startswith("sqlite://") and not path:
        raise InputError(f"tracking URI {shown} names no database file; use sqlite:///PATH")
    file = Path(path[1:] if uri.startswith("sqlite:") else path)  # sqlite:///rel.db is relative, sqlite:////abs.db absolute
    folder = file.parent
    if not folder.is_dir():
        raise InputError(f"tracking URI {shown}: folder {folder} does not exist; use an existing folder")


def retry_seconds() -> float:
    """How long tracking calls are retried (LAB2_TRACKING_RETRY_SECONDS, default 60 s)."""
    return float(os.environ.get(RETRY_SECONDS_ENV) or DEFAULT_RETRY_SECONDS)


def retrying(what: str, call: Callable[[], T]) -> T:
    """`call()`, retried with exponential backoff on transient errors; TrackingError once the window has passed."""
    window = retry_seconds()
    deadline = time.monotonic() + window
    delay = 0.2
    while True:
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - transient ones are retried, the rest re-raised
            if not _transient(error):
                if redact(str(error)) != str(error):  # MLflow's messages quote the URI, credentials and all
                    raise TrackingError(f"{what} was not logged: {redact(str(error))[:500]}") from None
                raise
            if time.monotonic() + delay > deadline:
                detail = redact(str(error))[:300]
                raise TrackingError(
                    f"MLflow at {redact(tracking_uri())} did not answer for {window:g} s: {what} was not logged ({detail})"
                ) from None
            time.sleep(delay)
            delay = min(2 * delay, 5.0)


def _transient(error: Exception) -> bool:
    # SQLAlchemy's OperationalError: a locked SQLite file, or tables another process is creating right now.
    if isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError, OperationalError)):
        return True
    code = getattr(error, "error_code", "")
    return code == "TEMPORARILY_UNAVAILABLE" or bool(_TRANSIENT.search(str(error)))


@functools.lru_cache(maxsize=8)
def _client(uri: str) -> MlflowClient:
    # lab2 retries on its own clock: MLflow's HTTP client fails fast instead of retrying for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # MLflow prints "View run … at: URI" per run: noise for a grid, and a leak when the URI holds credentials.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if redact(uri) != uri:
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    with _store_creation_lock(uri):
        return MlflowClient(tracking_uri=uri)


@contextmanager
def _store_creation_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive flock on a local SQLite file while MLflow creates or migrates its tables.

    Two processes creating one fresh store at once would otherwise race in its migrations. SQLite's
    own locks are fcntl locks, which flock does not touch.
    """
    if not uri.startswith("sqlite:///") or fcntl is None:
        yield
        return
    with Path(uri.removeprefix("sqlite:///")).open("ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def client() -> MlflowClient:
    """The MLflow client of the current tracking URI."""
    return _client(tracking_uri())


def experiment_id(name: str) -> str:
    """Id of experiment `name`, created if missing (safe when two processes race to create it)."""
    return retrying(f"experiment {name!r}", lambda: _experiment_id(name))


def _experiment_id(name: str) -> str:
    mlflow = client()
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return mlflow.create_experiment(name)
    except MlflowException as error:
        if _transient(error):
            raise
        return mlflow.get_experiment_by_name(name).experiment_id


@contextmanager
def pipeline_run(experiment: str, run_name: str, record: RunRecord, attach_to: str | None = None) -> Iterator[str]:
    """Open the parent run and yield its id: FINISHED on success, FAILED (re-raised) on error.

    With `attach_to`, yield that run instead: a sub-flow inside a larger pipeline run. Before a new
    parent opens, the URI is checked and runs left RUNNING by processes that are gone are marked KILLED.
    """
    if attach_to is not None:
        _link_flow_run(attach_to)
        yield attach_to
        return
    check_tracking_uri(tracking_uri())
    exp_id = experiment_id(experiment)
    reap_stale_runs(exp_id)
    tags = {ROLE_TAG: "pipeline", OWNER_TAG: owner(), **_prefect_tags(), **environment_tags(), **record.tags}
    what = f"the parent run {run_name!r} of experiment {experiment!r}"
    run_id = _create_run(exp_id, run_name, tags, what)
    _link_flow_run(run_id)
    try:
        log_to_run(run_id, RunRecord(params=record.params, metrics=record.metrics, figures=record.figures), what)
        yield run_id
    except BaseException:
        _terminate_quietly(run_id, "FAILED")  # if MLflow is gone, the next start marks it KILLED
        raise
    reap_stale_runs(exp_id)  # e.g. a cell run a killed Dask worker left open while another worker redid it
    retrying(f"the end of {what}", lambda: client().set_terminated(run_id, "FINISHED"))


def log_child_run(parent_run_id: str, step: str, run_name: str, record: RunRecord, identity: str | None = None) -> str:
    """Write one child run whole and give it the identity; on any error delete what was written and re-raise."""
    what = f"child run {run_name!r} (step {step})"
    exp_id = _experiment_of(parent_run_id)
    tags = {MLFLOW_PARENT_RUN_ID: parent_run_id, STEP_TAG: step, OWNER_TAG: owner(), **record.tags}
    if identity is not None:
        tags[IDENTITY_TAG] = identity
    run_id = _create_run(exp_id, run_name, tags, what)
    try:
        content = RunRecord(record.params, record.metrics, record.histories, {}, record.figures, record.datasets, record.figure_folder)
        log_to_run(run_id, content, what)
        retrying(what, lambda: client().set_terminated(run_id, "FINISHED"))
    except BaseException:
        _delete_quietly(run_id)  # if MLflow is gone, the run stays RUNNING and the next start marks it KILLED
        raise
    return run_id


def log_to_run(run_id: str, record: RunRecord, what: str | None = None) -> None:
    """Params, metrics and histories in batches (MLflow splits them at its limits), then figures."""
    what = what or f"run {run_id}"
    now = int(time.time() * 1000)
    # A final value closes its history: logged at the step after the history's last one.
    metrics = [Metric(k, float(v), now, len(record.histories.get(k, ()))) for k, v in record.metrics.items()]
    metrics += [Metric(k, float(v), now, step) for k, values in record.histories.items() for step, v in enumerate(values)]
    params = [Param(k, str(v)) for k, v in record.params.items()]
    tags = [RunTag(k, str(v)) for k, v in record.tags.items()]
    retrying(f"params and metrics of {what}", lambda: client().log_batch(run_id, metrics=metrics, params=params, tags=tags))
    if record.datasets:
        inputs = [DatasetInput(d._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, c)]) for c, d in record.datasets.items()]
        retrying(f"datasets of {what}", lambda: client().log_inputs(run_id, datasets=inputs))
    for name, figure in record.figures.items():
        path = f"{record.figure_folder}/{name}.png" if record.figure_folder else f"{name}.png"
        retrying(f"figure {name} of {what}", lambda: client().log_figure(run_id, figure, path))


def dataset(frame: pd.DataFrame, name: str, digest: str, source: str, targets: str) -> PandasDataset:
    """An MLflow dataset: `frame` (features and targets), named and hashed by lab2, from a CSV path or a loader."""
    origin = source if source.endswith(".csv") else CodeDatasetSource({"lab2.loader": source})
    return mlflow.data.from_pandas(frame, source=origin, targets=targets, name=name, digest=digest)


@dataclass(frozen=True)
class WinnerModel:
    """The winning cell as a model: what it is, where it was measured, and how to describe its version."""

    module: torch.nn.Module
    input_example: torch.Tensor
    cell_run_id: str  # the cell's own run: its metrics become the model's
    identity: str  # the cell's unit identity; a registry version is made only for a new one
    params: Mapping[str, object]
    tags: Mapping[str, str]
    description: str
    datasets: Mapping[str, PandasDataset]  # metric prefix (train, val) → the data it was measured on


def log_winner_model(parent_run_id: str, name: str, winner: WinnerModel) -> tuple[str, str | None]:
    """`winner` as logged model `name` in the parent's experiment, linked to the parent run and carrying its
    cell's metrics; a registry version of `name` unless one already holds its identity. Returns the model's
    URI and its registered version (None if the store has no registry)."""
    mlflow.set_tracking_uri(tracking_uri())
    what = f"logged model {name!r} of run {parent_run_id}"
    tags = {**winner.tags, IDENTITY_TAG: winner.identity}
    model_tags = {**tags, DESCRIPTION_TAG: winner.description}
    model = retrying(what, lambda: client().create_logged_model(
        _experiment_of(parent_run_id), name, parent_run_id, tags={k: str(v) for k, v in model_tags.items()},
        params={k: str(v) for k, v in winner.params.items()}, model_type="classifier",
    ))
    example = winner.input_example.numpy()
    with torch.no_grad():
        signature = infer_signature(example, winner.module(winner.input_example).numpy())
    retrying(what, lambda: mlflow.pytorch.log_model(
        winner.module, name=name, model_id=model.model_id, signature=signature, input_example=example,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    ))
    retrying(what, lambda: client().log_outputs(parent_run_id, [LoggedModelOutput(model.model_id, step=0)]))
    _link_cell_metrics(winner, model.model_id, what)
    return f"models:/{model.model_id}", _register_once(name, model.model_id, parent_run_id, winner, tags)


def _link_cell_metrics(winner: WinnerModel, model_id: str, what: str) -> None:
    """The cell's final metrics, logged again unchanged with the model's id and the data each was measured on."""
    cell = retrying(what, lambda: client().get_run(winner.cell_run_id)).data.metrics
    linked = []
    for key in sorted(cell):
        data = next((d for prefix, d in winner.datasets.items() if key.startswith(prefix)), None)
        history = retrying(what, lambda: client().get_metric_history(winner.cell_run_id, key))
        final = max(history, key=lambda m: (m.step, m.timestamp))
        linked.append(Metric(key, final.value, final.timestamp, final.step, model_id=model_id,
                             dataset_name=data.name if data else None, dataset_digest=data.digest if data else None))
    retrying(what, lambda: client().log_batch(winner.cell_run_id, metrics=linked))


def _register_once(name: str, model_id: str, run_id: str, winner: WinnerModel, tags: Mapping[str, str]) -> str | None:
    """A new version of registered model `name` for the model, unless a version already carries its identity."""
    what = f"registered model {name!r}"
    query = f"name = '{name}' and tags.`{IDENTITY_TAG}` = '{winner.identity}'"
    try:
        existing = retrying(what, lambda: client().search_model_versions(query))
    except MlflowException as error:
        if "registry" in str(error).lower():
            return None
        raise
    if existing:
        version = max(existing, key=lambda v: int(v.version))  # the same unit: its weights are that version's
    else:
        try:
            retrying(what, lambda: client().get_registered_model(name))
        except MlflowException:
            retrying(what, lambda: client().create_registered_model(name, description="lab2's MLP: the grid's best group, seed-0 model"))
        version = retrying(what, lambda: client().create_model_version(
            name, f"models:/{model_id}", run_id=run_id, tags={k: str(v) for k, v in tags.items()},
            description=winner.description, model_id=model_id,
        ))
    # What the model page reads to show "Registered" (mlflow.register_model sets the same tag).
    listing = json.dumps([{"name": name, "version": version.version}])
    retrying(what, lambda: client().set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: listing}))
    return version.version


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
    """The MLP cells of a pipeline run, read back from MLflow: one row of params and metrics per cell.

    The cells are those its `units/mlp_grid.csv` names (reused runs included), else its `mlp` children.
    """
    try:
        parent = client().get_run(parent_run_id)
    except MlflowException:
        raise LookupError(f"no run {parent_run_id!r} at {redact(tracking_uri())}") from None
    run_ids = _unit_run_ids(parent_run_id, "mlp_grid")
    if run_ids is None:
        query = f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`{STEP_TAG}` = 'mlp'"
    else:
        query = "attributes.run_id IN ({})".format(", ".join(f"'{r}'" for r in run_ids))
    runs = _search(parent.info.experiment_id, f"{query} and attributes.status = 'FINISHED'") if run_ids != [] else []
    if not runs:
        raise LookupError(f"run {parent_run_id} has no finished MLP cells")
    derived = ("log10_lr",)  # a function of lr, for the UI's charts
    frame = pd.DataFrame([
        {**{k: v for k, v in r.data.params.items() if k not in derived}, **r.data.metrics, "diverged": r.data.tags.get("lab2.diverged") == "true"}
        for r in runs
    ])
    return frame.astype({"lr": float, "iterations": int, "seed": int, "diverged": bool})


def _unit_run_ids(parent_run_id: str, flow_name: str) -> list[str] | None:
    """Run ids of the `mlp` units a parent lists in units/{flow_name}.csv; None if it lists none."""
    units = read_units(parent_run_id, flow_name)
    return None if units is None else units.loc[units["step"] == "mlp", "run_id"].tolist()


def read_units(parent_run_id: str, flow_name: str) -> pd.DataFrame | None:
    """The units table a parent run holds for a flow (units/{flow_name}.csv); None if it has none."""
    path = f"units/{flow_name}.csv"
    if path not in {a.path for a in client().list_artifacts(parent_run_id, "units")}:
        return None
    with tempfile.TemporaryDirectory() as folder:
        return pd.read_csv(client().download_artifacts(parent_run_id, path, folder))


def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """Every (step, value) of a run's metric, by step."""
    history = retrying(f"the history of {key!r} of run {run_id}", lambda: client().get_metric_history(run_id, key))
    return sorted((m.step, m.value) for m in history)


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    """A text artifact (a CSV table, an HTML page) on a run."""
    retrying(f"{artifact_file} of run {run_id}", lambda: client().log_text(run_id, text, artifact_file))


def copy_artifact(source_run_id: str, path: str, target_run_id: str) -> None:
    """Copy one artifact file from a run to the same path on another run."""
    folder = str(Path(path).parent) if Path(path).parent != Path(".") else None

    def copy() -> None:
        local = client().download_artifacts(source_run_id, path)
        client().log_artifact(target_run_id, local, folder)

    retrying(f"{path} of run {target_run_id}", copy)


def finished_units(experiment: str, identities: Collection[str]) -> dict[str, FinishedRun]:
    """The FINISHED run that carries each identity, where one exists (the newest if several do)."""
    exp_id = experiment_id(experiment)
    wanted = set(identities)
    query = f"attributes.status = 'FINISHED' and tags.`{IDENTITY_TAG}` LIKE '%'"
    found: dict[str, Run] = {}
    for run in retrying("a search for finished runs", lambda: _search(exp_id, query)):
        identity = run.data.tags.get(IDENTITY_TAG)  # None if a concurrent process just superseded the run
        if identity in wanted and (identity not in found or _age(run) > _age(found[identity])):
            found[identity] = run
    return {i: FinishedRun(r.info.run_id, dict(r.data.metrics), dict(r.data.tags)) for i, r in found.items()}


def reap_stale_runs(exp_id: str) -> list[str]:
    """Mark KILLED every RUNNING run whose owner process is gone; return their ids."""
    running = retrying("a search for running runs", lambda: _search(exp_id, "attributes.status = 'RUNNING'"))
    stale = [r for r in running if OWNER_TAG in r.data.tags and not owner_alive(r.data.tags[OWNER_TAG])]
    for run in stale:
        reason = f"owner {run.data.tags[OWNER_TAG]} was gone when {owner()} started"
        retrying(f"the stale mark of run {run.info.run_id}", lambda: client().set_tag(run.info.run_id, "lab2.stale", reason))
        retrying(f"the stale mark of run {run.info.run_id}", lambda: client().set_terminated(run.info.run_id, "KILLED"))
    return [r.info.run_id for r in stale]


def run_params(run_id: str) -> dict[str, str]:
    """A run's params."""
    return dict(retrying(f"the params of run {run_id}", lambda: client().get_run(run_id)).data.params)


def owner() -> str:
    """This process as host/pid/start time (s since epoch), so a later process can tell if it is gone."""
    return _owner_of(os.getpid())


def owner_alive(tag: str) -> bool:
    """False only if `tag` names a process of this host that no longer runs (or whose pid was reused)."""
    try:
        host, pid_text, _ = tag.rsplit("/", 2)
        pid = int(pid_text)
    except ValueError:
        return True  # not ours to judge
    if host != socket.gethostname():
        return True  # another machine: cannot tell, so never killed from here
    try:
        return _owner_of(pid) == tag
    except psutil.Error:
        return False


def _owner_of(pid: int) -> str:
    return f"{socket.gethostname()}/{pid}/{psutil.Process(pid).create_time():.2f}"


def _create_run(exp_id: str, run_name: str, tags: Mapping[str, str], what: str) -> str:
    """Create a run once, even if a retry follows a reply that was lost: a retry first looks for the run's token."""
    token = uuid.uuid4().hex
    tags = {**tags, CREATE_TOKEN_TAG: token}
    attempts = 0

    def create() -> str:
        nonlocal attempts
        attempts += 1
        if attempts > 1 and (created := _search(exp_id, f"tags.`{CREATE_TOKEN_TAG}` = '{token}'")):
            return created[0].info.run_id
        return client().create_run(exp_id, run_name=run_name, tags=tags).info.run_id

    return retrying(what, create)


def settle_identities(run_id: str, identities: Collection[str]) -> None:
    """Leave each identity on its newest FINISHED run; older ones (from --force, or a concurrent
    process computing the same unit) get lab2.superseded_by. One search for a whole flow's units."""
    exp_id = _experiment_of(run_id)
    wanted = set(identities)
    query = f"attributes.status = 'FINISHED' and tags.`{IDENTITY_TAG}` LIKE '%'"
    by_identity: dict[str, list[Run]] = {}
    for run in retrying("a search for finished runs", lambda: _search(exp_id, query)):
        identity = run.data.tags.get(IDENTITY_TAG)  # None if a concurrent process just superseded the run
        if identity in wanted:
            by_identity.setdefault(identity, []).append(run)
    for identity, runs in by_identity.items():
        newest = max(runs, key=_age)
        for run in runs:
            if run is not newest:
                retrying(f"the identity of run {run.info.run_id}", lambda: _supersede(run.info.run_id, newest.info.run_id, identity))


def _supersede(run_id: str, newest_run_id: str, identity: str) -> None:
    for key, value in {SUPERSEDED_TAG: newest_run_id, "lab2.superseded_identity": identity}.items():
        try:
            client().set_tag(run_id, key, value)
        except (MlflowException, IntegrityError):
            if client().get_run(run_id).data.tags.get(key) != value:  # else a concurrent process set it first
                raise
    try:
        client().delete_tag(run_id, IDENTITY_TAG)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise


def _age(run: Run) -> tuple[int, str]:
    return (run.info.end_time or 0, run.info.run_id)


def _search(exp_id: str, query: str) -> list[Run]:
    runs, token = [], None
    while True:
        page = client().search_runs([exp_id], query, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _terminate_quietly(run_id: str, status: str) -> None:
    try:
        retrying(f"the {status} status of run {run_id}", lambda: client().set_terminated(run_id, status))
    except (TrackingError, MlflowException):
        pass


def _delete_quietly(run_id: str) -> None:
    try:
        retrying(f"the deletion of run {run_id}", lambda: client().delete_run(run_id))
    except (TrackingError, MlflowException):
        pass


def ui_base(uri: str) -> str:
    """Address of the MLflow UI of a store: the server itself, else where `mlflow ui` listens by default."""
    return redact(uri.rstrip("/")) if uri.startswith(("http://", "https://")) else LOCAL_UI


def runs_link(experiment_id: str, view: str | None = None) -> str:
    """The UI route of an experiment's training runs (in a saved view), relative to the UI's address."""
    return f"#/experiments/{experiment_id}/runs{UI_QUERY}" + (f"&viewStateShareKey={view}" if view else "")


def run_link(run_id: str) -> str:
    """The UI route of a run's page, relative to the UI's address."""
    return f"#/experiments/{_experiment_of(run_id)}/runs/{run_id}{UI_QUERY}"


def runs_url(experiment: str, view: str | None = None) -> str:
    """The experiment's training runs (in a saved view) in the MLflow UI of the current store."""
    return f"{ui_base(tracking_uri())}/{runs_link(experiment_id(experiment), view)}"


def run_url(run_id: str) -> str | None:
    """The MLflow UI page of a run, when the tracking URI is an MLflow server."""
    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/{run_link(run_id)}"


def set_runs_view(experiment: str, name: str, columns: Sequence[str]) -> str:
    """A saved view of the experiment's runs table (MLflow keeps it as an experiment tag) that shows `columns`
    ("params.`lr`", "metrics.`val_accuracy`", "tags.`lab2.group`"); its key, for links (viewStateShareKey=KEY)."""
    packed = _view_state(columns)
    key = view_key(columns)
    now = int(time.time() * 1000)
    value = json.dumps({"name": name, "createdAt": now, "updatedAt": now, "state": f"deflate;{packed}"})
    exp_id = experiment_id(experiment)
    if VIEW_TAG + key not in retrying(f"the views of experiment {experiment!r}", lambda: client().get_experiment(exp_id)).tags:
        retrying(f"view {name!r}", lambda: client().set_experiment_tag(exp_id, VIEW_TAG + key, value))
    return key


def view_key(columns: Sequence[str]) -> str:
    """The key of the saved view that shows `columns` (the same columns, the same key)."""
    return hashlib.sha256(_view_state(columns).encode()).hexdigest()[:12]


def _view_state(columns: Sequence[str]) -> str:
    """The runs table's state as MLflow's UI saves it: JSON, zlib-compressed, base64."""
    state = {
        "searchFilter": "", "orderByKey": "attributes.start_time", "orderByAsc": False, "startTime": "ALL",
        "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
        "selectedColumns": ["attributes.`Models`", *columns], "columnOrder": [], "columnWidths": {},
        "runsHiddenMode": "FIRST_10_RUNS", "viewMaximized": False, "runListHidden": False, "isAccordionReordered": False,
        "useGroupedValuesInCharts": True, "hideEmptyCharts": True, "groupBy": None, "groupsExpanded": {},
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }
    return base64.b64encode(zlib.compress(json.dumps(state, sort_keys=True).encode(), 9)).decode()


def set_description(run_id: str, markdown: str) -> None:
    """The run page's Description."""
    retrying(f"the description of run {run_id}", lambda: client().set_tag(run_id, DESCRIPTION_TAG, markdown))


def run_tags(run_id: str) -> dict[str, str]:
    """A run's tags."""
    return dict(run_data(run_id).tags)


def run_data(run_id: str):  # noqa: ANN201 - MLflow's RunData: params, metrics, tags
    """A run's params, final metrics and tags."""
    return retrying(f"run {run_id}", lambda: client().get_run(run_id)).data


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
        link = f"{LOCAL_UI}/{run_link(run_id)}"
        text = f"MLflow run `{run_id}` in `{redact(tracking_uri())}`: start `{ui_command(tracking_uri())}`, then open [{link}]({link})."
        create_markdown_artifact(text, key="mlflow-run", description=description)


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def experiment_name_of(run_id: str) -> str:
    """The name of a run's experiment."""
    exp_id = _experiment_of(run_id)
    return retrying(f"experiment {exp_id}", lambda: client().get_experiment(exp_id)).name


@functools.lru_cache(maxsize=64)
def _experiment_of(run_id: str) -> str:
    return retrying(f"the experiment of run {run_id}", lambda: client().get_run(run_id)).info.experiment_id
