"""Links between lab2's runs, the MLflow UI and Prefect: UI addresses, the saved runs view, Prefect tags and artifacts."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import zlib
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from mlflow.utils.git_utils import get_git_commit
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

from lab2.tasks.tracking.connection import client, experiment_of, redact, tracking_uri, ui_command

# MLflow 3.17 opens an experiment on its GenAI overview unless the link asks for the training runs.
UI_QUERY = "?workflowType=machine_learning"


LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default


VIEW_TAG = "mlflow.sharedViewState."  # MLflow's saved views of a runs table, one experiment tag each
RUNS_VIEW = "lab2: the lab's columns"
RUNS_COLUMNS = (
    "params.`lr`", "params.`iterations`", "params.`seed`", "metrics.`val_accuracy`", "metrics.`train_accuracy`",
    "metrics.`val_loss`", "metrics.`train_loss`", "tags.`lab2.group`",
)


def ui_base(uri: str) -> str:
    """Address of the MLflow UI of a store: the server itself, else where `mlflow ui` listens by default."""
    return redact(uri.rstrip("/")) if uri.startswith(("http://", "https://")) else LOCAL_UI


def runs_link(experiment_id: str, view: str | None = None) -> str:
    """The UI route of an experiment's training runs (in a saved view), relative to the UI's address."""
    return f"#/experiments/{experiment_id}/runs{UI_QUERY}" + (f"&viewStateShareKey={view}" if view else "")


def saved_runs_link(exp_id: str) -> str:
    """The route of the experiment's training runs in lab2's saved view when the experiment holds it, else plain."""
    key = view_key()
    held = VIEW_TAG + key in client(f"the views of experiment {exp_id}").get_experiment(exp_id).tags
    return runs_link(exp_id, key if held else None)


def run_link(run_id: str, experiment_id: str | None = None) -> str:
    """The UI route of a run's page (in `experiment_id`, else looked up), relative to the UI's address."""
    return f"#/experiments/{experiment_id or experiment_of(run_id)}/runs/{run_id}{UI_QUERY}"


def runs_url(exp_id: str, view: str | None = None) -> str:
    """The experiment's training runs (in a saved view) in the MLflow UI of the current store."""
    return f"{ui_base(tracking_uri())}/{runs_link(exp_id, view)}"


def run_url(run_id: str) -> str | None:
    """The MLflow UI page of a run, when the tracking URI is an MLflow server."""
    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/{run_link(run_id)}"


def set_runs_view(exp_id: str, name: str = RUNS_VIEW, columns: Sequence[str] = RUNS_COLUMNS) -> str:
    """A saved view of the experiment's runs table (MLflow keeps it as an experiment tag) that shows `columns`
    ("params.`lr`", "metrics.`val_accuracy`", "tags.`lab2.group`"); its key, for links (viewStateShareKey=KEY)."""
    packed = _view_state(columns)
    key = view_key(columns)
    now = int(time.time() * 1000)
    value = json.dumps({"name": name, "createdAt": now, "updatedAt": now, "state": f"deflate;{packed}"})
    if VIEW_TAG + key not in client(f"the views of experiment {exp_id}").get_experiment(exp_id).tags:
        client(f"view {name!r}").set_experiment_tag(exp_id, VIEW_TAG + key, value)
    return key


def view_key(columns: Sequence[str] = RUNS_COLUMNS) -> str:
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


def environment_tags() -> dict[str, str]:
    """What produced a run: git commit (inside a checkout), torch/prefect/mlflow versions, torch's threads."""
    import torch

    tags = {f"lab2.env.{name}": version(name) for name in ("torch", "prefect", "mlflow")}
    tags["lab2.env.torch_threads"] = str(torch.get_num_threads())
    commit = get_git_commit(Path(__file__).parent)
    return {**tags, MLFLOW_GIT_COMMIT: commit} if commit else tags


def prefect_tags() -> dict[str, str]:
    """The Prefect flow run this pipeline run belongs to; its deployment and UI page when a Prefect server is in use.
    Under `lab2 run`'s temporary API (which sets PREFECT_UI_URL to "") the flow's name alone: its flow runs end
    with it, and a tag must not name a run nobody can open."""
    from prefect.runtime import deployment, flow_run
    from prefect.settings import PREFECT_UI_URL

    if flow_run.id is None:
        return {}
    if os.environ.get("PREFECT_UI_URL") == "":
        return {"prefect.flow_name": flow_run.flow_name}
    tags = {"prefect.flow_run_id": flow_run.id, "prefect.flow_run_name": flow_run.name, "prefect.flow_name": flow_run.flow_name}
    if deployment.name is not None:
        tags |= {"prefect.deployment_name": deployment.name, "prefect.deployment_id": deployment.id}
    if PREFECT_UI_URL.value():  # unset or empty (`lab2 run`'s temporary API serves no UI): no page to link
        tags["prefect.flow_run_url"] = flow_run.ui_url
    return tags


def link_flow_run(run_id: str) -> None:
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

