"""Links between lab2's runs, the MLflow UI and Prefect: UI addresses, the saved runs view, Prefect tags and artifacts."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import time
import urllib.parse
import zlib
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from uuid import UUID

from mlflow.utils.git_utils import get_git_commit
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

from lab2.tasks.tracking.connection import client, experiment_of, redact, tracking_uri, ui_command

# MLflow 3.17 opens an experiment on its GenAI overview unless the link asks for the training runs.
UI_QUERY = "?workflowType=machine_learning"


VIEW_TAG = (
    "mlflow.sharedViewState."  # MLflow's saved views of a runs table, one experiment tag each
)
RUNS_VIEW = "lab2: the lab's groups"
# Group rows average every column, params too (lr 0.1 shows as 0.10000000000000002): the label names the params.
RUNS_COLUMNS = (
    "metrics.`val_accuracy`",
    "metrics.`train_accuracy`",
    "metrics.`val_loss`",
    "metrics.`train_loss`",
)
# The run-name column holds the group labels, "Group: " before each: its width in pixels, as measured in Chromium.
MIN_RUN_NAME_WIDTH, RUN_NAME_PADDING, CHARACTER_WIDTH = 230, 100, 8


def runs_link(experiment_id: str, view: str | None = None) -> str:
    """The UI route of an experiment's training runs (in a saved view), relative to the UI's address."""
    return f"#/experiments/{experiment_id}/runs{UI_QUERY}" + (
        f"&viewStateShareKey={view}" if view else ""
    )


def run_link(run_id: str, experiment_id: str | None = None) -> str:
    """The UI route of a run's page (in `experiment_id`, else looked up), relative to the UI's address."""
    return f"#/experiments/{experiment_id or experiment_of(run_id)}/runs/{run_id}{UI_QUERY}"


def runs_url(exp_id: str, view: str | None = None) -> str | None:
    """The experiment's training runs (in a saved view) in the MLflow UI, when the tracking URI is an MLflow server
    (a local store's UI is `lab2 ui`'s, on a port it picks)."""
    return _in_server_ui(runs_link(exp_id, view))


def _in_server_ui(route: str) -> str | None:
    """A UI route as a URL of the MLflow server at the tracking URI (credentials redacted); None for a local store."""
    uri = tracking_uri()
    return f"{redact(uri.rstrip('/'))}/{route}" if uri.startswith(("http://", "https://")) else None


def run_url(run_id: str) -> str | None:
    """The MLflow UI page of a run, when the tracking URI is an MLflow server (credentials redacted)."""
    return _in_server_ui(run_link(run_id))


def artifact_location(run_id: str, path: str) -> str:
    """Where a person opens one of a run's artifacts: its page in an MLflow server's UI, else its file (a file: URI
    a browser opens; the run's artifacts are local files then)."""
    run = client(f"the artifacts of run {run_id}").get_run(run_id)
    if url := _in_server_ui(
        f"#/experiments/{run.info.experiment_id}/runs/{run_id}/artifactPath/{path}{UI_QUERY}"
    ):
        return url
    root = run.info.artifact_uri
    parsed = urllib.parse.urlparse(root)
    if parsed.scheme in ("", "file"):
        return (Path(urllib.parse.unquote(parsed.path)) / path).resolve().as_uri()
    return f"{root.rstrip('/')}/{path}"


def set_runs_view(
    exp_id: str, labels: Sequence[str], name: str = RUNS_VIEW, columns: Sequence[str] = RUNS_COLUMNS
) -> str:
    """A saved view of the experiment's runs table (MLflow keeps it as an experiment tag): grouped by `lab2.group`,
    each group's label (`labels`) shown whole, every group charted, `columns` ("metrics.`val_accuracy`") shown; its
    key, for links (viewStateShareKey=KEY)."""
    packed = _view_state(columns, labels)
    key = hashlib.sha256(packed.encode()).hexdigest()[:12]
    now = int(time.time() * 1000)
    value = json.dumps(
        {"name": name, "createdAt": now, "updatedAt": now, "state": f"deflate;{packed}"}
    )
    if (
        VIEW_TAG + key
        not in client(f"the views of experiment {exp_id}").get_experiment(exp_id).tags
    ):
        client(f"view {name!r}").set_experiment_tag(exp_id, VIEW_TAG + key, value)
    return key


def saved_runs_url(exp_id: str) -> str | None:
    """`saved_runs_link` in an MLflow server's UI (None for a local store, whose UI is `lab2 ui`'s)."""
    return (
        _in_server_ui(saved_runs_link(exp_id))
        if tracking_uri().startswith(("http://", "https://"))
        else None
    )


def saved_runs_link(exp_id: str, name: str = RUNS_VIEW) -> str:
    """The route of the experiment's training runs in its latest saved view called `name`, else without a view."""
    tags = client(f"the views of experiment {exp_id}").get_experiment(exp_id).tags
    views = [
        (json.loads(value).get("updatedAt", 0), key.removeprefix(VIEW_TAG))
        for key, value in tags.items()
        if key.startswith(VIEW_TAG) and json.loads(value).get("name") == name
    ]
    return runs_link(exp_id, max(views)[1] if views else None)


def _view_state(columns: Sequence[str], labels: Sequence[str]) -> str:
    """The runs table's state as MLflow's UI saves it (JSON, zlib-compressed, base64). Sorting by the group tag
    lists the child runs flat (sorted by start time they fold under their parent); a width applies only to a
    column named in columnOrder; each group starts folded (its id: "tag.lab2.group.LABEL"); SHOW_ALL charts every
    group, not the first 10."""
    name_column = "attributes.`Run Name`"
    label_width = RUN_NAME_PADDING + CHARACTER_WIDTH * max(map(len, labels), default=0)
    state = {
        "searchFilter": "",
        "orderByKey": "tags.`lab2.group`",
        "orderByAsc": True,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": ["attributes.`Models`", *columns],
        "columnOrder": [name_column, *columns],
        "columnWidths": {name_column: max(MIN_RUN_NAME_WIDTH, label_width)},
        "runsHiddenMode": "SHOW_ALL",
        "viewMaximized": False,
        "runListHidden": False,
        "isAccordionReordered": False,
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "groupsExpanded": {f"tag.lab2.group.{label}": False for label in labels},
        "groupBy": {
            "aggregateFunction": "average",
            "groupByKeys": [{"mode": "tag", "groupByData": "lab2.group"}],
        },
        "globalLineChartConfig": {
            "xAxisKey": "step",
            "lineSmoothness": 0,
            "selectedXAxisMetricKey": "",
        },
        "chartsSearchFilter": "accuracy",  # the chart view opens on the grid's accuracies, a bar per group
    }
    return base64.b64encode(zlib.compress(json.dumps(state, sort_keys=True).encode(), 9)).decode()


def environment_tags() -> dict[str, str]:
    """What produced a run: git commit (inside a checkout), torch/prefect/mlflow versions, and torch's threads when
    this process computes with torch (a rerun with nothing to do does not load it)."""
    tags = {f"lab2.env.{name}": version(name) for name in ("torch", "prefect", "mlflow")}
    if torch := sys.modules.get("torch"):
        tags["lab2.env.torch_threads"] = str(torch.get_num_threads())
    commit = get_git_commit(Path(__file__).parent)
    return {**tags, MLFLOW_GIT_COMMIT: commit} if commit else tags


def prefect_tags() -> dict[str, str]:
    """The Prefect flow run this pipeline run belongs to; its deployment and UI page when a Prefect server is in use.
    Under `lab2 run`'s temporary API (which sets PREFECT_UI_URL to "") the flow's name alone: its flow runs end
    with it, and a tag must not name a run nobody can open."""
    if (
        "prefect" not in sys.modules
    ):  # no flow run without Prefect: a rerun with nothing to do, outside Prefect
        return {}
    from prefect.runtime import deployment, flow_run
    from prefect.settings import PREFECT_UI_URL

    if flow_run.id is None:
        return {}
    if os.environ.get("PREFECT_UI_URL") == "":
        return {"prefect.flow_name": flow_run.flow_name}
    tags = {
        "prefect.flow_run_id": flow_run.id,
        "prefect.flow_run_name": flow_run.name,
        "prefect.flow_name": flow_run.flow_name,
    }
    if deployment.name is not None:
        tags |= {"prefect.deployment_name": deployment.name, "prefect.deployment_id": deployment.id}
    if (
        PREFECT_UI_URL.value()
    ):  # unset or empty (`lab2 run`'s temporary API serves no UI): no page to link
        tags["prefect.flow_run_url"] = flow_run.ui_url
    return tags


def link_flow_run(run_id: str) -> None:
    """A Prefect artifact on the current flow run that leads to its MLflow parent run."""
    if "prefect" not in sys.modules:
        return
    from prefect.artifacts import create_link_artifact, create_markdown_artifact
    from prefect.runtime import flow_run

    if flow_run.id is None:
        return
    url = run_url(run_id)
    description = "The MLflow parent run of this flow run"
    if url is not None:
        create_link_artifact(
            url, link_text=f"MLflow run {run_id}", key="mlflow-run", description=description
        )
    else:
        text = (
            f"MLflow run `{run_id}` in `{redact(tracking_uri())}`: `{ui_command(tracking_uri())}` opens the MLflow UI on "
            f"that store and prints its link; the run's page is `{run_link(run_id)}` there."
        )
        create_markdown_artifact(text, key="mlflow-run", description=description)


def top_flow_run_id() -> UUID | None:
    """The flow run a user opens: the top of the current flow run's tree (itself when it runs alone)."""
    from prefect.runtime import flow_run

    root = flow_run.root_flow_run_id
    return UUID(str(root)) if root else None
