"""Links into the MLflow UI: a run's page, an experiment's runs, an artifact, the saved runs
view."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from lab2.tasks.layout import RUNS_COLUMNS, RUNS_VIEW, VIEW_TAG, view_state
from lab2.tasks.tracking.connection import client, experiment_of, redact, retried, tracking_uri
from lab2.tasks.tracking.queries import read_run

# MLflow 3.17 opens an experiment on its GenAI overview unless the link asks for the training runs.
UI_QUERY = "?workflowType=machine_learning"


def runs_link(experiment_id: str, view: str | None = None) -> str:
    """The UI route of an experiment's training runs (in a saved view), relative to the UI."""
    return f"#/experiments/{experiment_id}/runs{UI_QUERY}" + (
        f"&viewStateShareKey={view}" if view else ""
    )


def run_link(run_id: str, experiment_id: str | None = None) -> str:
    """The UI route of a run's page (in `experiment_id`, else looked up), relative to the UI."""
    return f"#/experiments/{experiment_id or experiment_of(run_id)}/runs/{run_id}{UI_QUERY}"


def runs_url(exp_id: str, view: str | None = None) -> str | None:
    """The experiment's training runs (in a saved view) in the MLflow UI, when the tracking URI is
    an MLflow server (a local store's UI is `lab2 ui`'s, on a port it picks)."""
    return _in_server_ui(runs_link(exp_id, view))


def run_url(run_id: str) -> str | None:
    """The MLflow UI page of a run, when the tracking URI is an MLflow server (credentials
    redacted)."""
    return _in_server_ui(run_link(run_id))


def _in_server_ui(route: str) -> str | None:
    """A UI route as a URL of the MLflow server at the tracking URI (credentials redacted); None for
    a local store."""
    uri = tracking_uri()
    return f"{redact(uri.rstrip('/'))}/{route}" if uri.startswith(("http://", "https://")) else None


def artifact_location(run_id: str, path: str) -> str:
    """Where a person opens one of a run's artifacts: its page in an MLflow server's UI, else its
    file (a file: URI a browser opens; the run's artifacts are local files then)."""
    run = read_run(run_id)
    route = f"#/experiments/{run.info.experiment_id}/runs/{run_id}/artifactPath/{path}{UI_QUERY}"
    if url := _in_server_ui(route):
        return url
    root = run.info.artifact_uri
    parsed = urllib.parse.urlparse(root)
    if parsed.scheme in ("", "file"):
        return (Path(urllib.parse.unquote(parsed.path)) / path).resolve().as_uri()
    return f"{root.rstrip('/')}/{path}"


def set_runs_view(
    exp_id: str, labels: Sequence[str], name: str = RUNS_VIEW, columns: Sequence[str] = RUNS_COLUMNS
) -> str:
    """A saved view of the experiment's runs table (MLflow keeps it as an experiment tag): grouped
    by the group tag, each group's label (`labels`) shown whole, every group charted, `columns`
    shown; its key, for links (viewStateShareKey=KEY)."""
    packed = view_state(labels, columns)
    key = hashlib.sha256(packed.encode()).hexdigest()[:12]
    now = int(time.time() * 1000)
    value = json.dumps(
        {"name": name, "createdAt": now, "updatedAt": now, "state": f"deflate;{packed}"}
    )
    if VIEW_TAG + key not in _experiment_tags(exp_id):
        _set_experiment_tag(exp_id, VIEW_TAG + key, value)
    return key


def saved_runs_url(exp_id: str) -> str | None:
    """`saved_runs_link` in an MLflow server's UI (None for a local store, whose UI is `lab2
    ui`'s)."""
    if not tracking_uri().startswith(("http://", "https://")):
        return None  # no view to look up
    return _in_server_ui(saved_runs_link(exp_id))


def saved_runs_link(exp_id: str, name: str = RUNS_VIEW) -> str:
    """The route of the experiment's training runs in its latest saved view called `name`, else
    without a view."""
    views = [
        (json.loads(value).get("updatedAt", 0), key.removeprefix(VIEW_TAG))
        for key, value in _experiment_tags(exp_id).items()
        if key.startswith(VIEW_TAG) and json.loads(value).get("name") == name
    ]
    return runs_link(exp_id, max(views)[1] if views else None)


@retried("the views of experiment {exp_id}")
def _experiment_tags(exp_id: str) -> dict[str, str]:
    return dict(client().get_experiment(exp_id).tags)


@retried("view {key!r} of experiment {exp_id}")
def _set_experiment_tag(exp_id: str, key: str, value: str) -> None:
    client().set_experiment_tag(exp_id, key, value)
