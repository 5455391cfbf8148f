"""Every name lab2 writes to MLflow, in one place: its runs' tags, a parent run's artifacts, the
winner model's names and the saved view of the runs table (and the Prefect event a changed run
emits). Writers and readers take the names from here.

Params and metrics are named by the parameter models (`lab2.core.params`) and the records
(`lab2.tasks.records`); this module names everything else.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Sequence

from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE

# --- Runs: what each one is ---------------------------------------------------------------------
ROLE_TAG = "lab2.role"  # "pipeline" on a parent run
PIPELINE_ROLE = "pipeline"
STEP_TAG = "lab2.step"  # a child run's unit of work: one of STEPS
GD_STEP, SVD_STEP, MLP_STEP = "gd-factorise", "svd-baseline", "mlp"
STEPS = (GD_STEP, SVD_STEP, MLP_STEP)
PARENT_TAG = MLFLOW_PARENT_RUN_ID
DESCRIPTION_TAG = MLFLOW_RUN_NOTE  # the run page's Description, markdown
GIT_COMMIT_TAG = MLFLOW_GIT_COMMIT
ENV_TAG_PREFIX = "lab2.env."  # lab2.env.torch, lab2.env.torch_threads, ...
TASK_RUNNER_TAG = "lab2.task_runner"
DATASET_LOADER_KEY = "lab2.loader"  # a dataset's source when it is not a file: the loader's name

# --- Runs: ownership (a RUNNING run whose owner is gone is marked KILLED) -------------------------
OWNER_TAG = "lab2.owner"  # host/pid/start time of the process that writes the run
CREATE_TOKEN_TAG = "lab2.create_token"  # a run is created once, even when a reply is lost
STALE_TAG = "lab2.stale"  # why a run was marked KILLED

# --- Units: identity and reuse -------------------------------------------------------------------
IDENTITY_TAG = "lab2.identity"  # what a reused result is found by
CODE_VERSION_TAG = "lab2.code_version"
# an older run of an identity: the newest run that holds it
SUPERSEDED_BY_TAG = "lab2.superseded_by"
SUPERSEDED_IDENTITY_TAG = "lab2.superseded_identity"
RUN_KEY_TAG = "lab2.run_key"  # the identity of a whole pipeline run
PARAMS_KEY_TAG = "lab2.params_key"  # a pipeline run's parameters, hashed: the runs a watch compares
RERUN_OF_TAG = "lab2.rerun_of"  # a rerun with nothing to do: the run whose results it copied

# --- Units: what the UI groups and shows ---------------------------------------------------------
GROUP_TAG = "lab2.group"  # the group a run's seeds are averaged over (MLflow's group-by)
DIVERGED_TAG = "lab2.diverged"  # "true" / "false"
# a GD factorisation's end: converged, not converged (over 1% above the optimum) or diverged
GD_OUTCOME_TAG = "lab2.gd_outcome"
VAL_CORRECT_TAG = "lab2.val_correct"  # a cell's hits per validation row ("1"/"0", in row order)
BEST_TAG = "lab2.best_val_accuracy"  # the best group's mean val accuracy, for `lab2 history`

# --- Since the last run --------------------------------------------------------------------------
WATCH_TAG = "lab2.watch"  # the verdict since the last run with the same parameters ("first")
PREDECESSOR_TAG = "lab2.watch.predecessor"
CAUSE_TAG = "lab2.watch.cause"  # what went in differently, in words ("" when nothing did)

# --- The Prefect flow run a pipeline run belongs to, and the event a changed run emits ----------
CHANGED_EVENT = "lab2.watch.changed"  # automations.yaml acts on it
FLOW_RUN_ID_TAG = "prefect.flow_run_id"
FLOW_RUN_NAME_TAG = "prefect.flow_run_name"
FLOW_NAME_TAG = "prefect.flow_name"
FLOW_RUN_URL_TAG = "prefect.flow_run_url"
DEPLOYMENT_NAME_TAG = "prefect.deployment_name"
DEPLOYMENT_ID_TAG = "prefect.deployment_id"

# --- The winner model ----------------------------------------------------------------------------
REGISTERED_MODEL = "lab2-mlp"
CELL_TAG = "lab2.cell"  # the winning cell's run name
CELL_RUN_ID_TAG = "lab2.cell_run_id"
SERVED_MLP_JSON = "mlp.json"  # the model's artifact: columns, classes, scaling and weights
GROUP_VAL_ACCURACY_TAG = "lab2.group_val_accuracy"


def units_tag(flow_name: str, kind: str) -> str:
    """A parent run's count of one flow's units, `kind` "reused" or "computed"."""
    return f"lab2.{flow_name}.units_{kind}"


# --- A parent run's artifacts --------------------------------------------------------------------
FIGURES_FOLDER = "figures"
FACTORISATION_CSV = "factorisation.csv"  # Q1's table: a row per matrix
MLP_CELLS_CSV = "mlp_cells.csv"  # Q2's cells, every split seed
SEED_SUMMARY_CSV = "seed_summary.csv"
SEED_PAIRS_CSV = "seed_pairs.csv"
SEED_SUMMARY_HTML = "seed_summary.html"
U_ROWS_CSV = "u.csv"  # the dataset's U rows from SVD and GD, with each row's class
RECONSTRUCTION_CSV = "reconstruction.csv"  # the lab's 3×3 matrix and its reconstructions
REPORT_MD, REPORT_HTML = "report.md", "report.html"  # the lab report
INPUTS_JSON = "inputs.json"  # what went into a parent run: code, data, environment
TERMINAL_TXT = "terminal.txt"  # what `lab2 run` printed of the results; a rerun prints it again
DESCRIPTION_MD = "description.md"  # a description longer than a tag holds, whole
UNITS_FOLDER = "units"
U_SCATTER = "u_scatter"  # Q1_3's figure


def units_csv(flow_name: str) -> str:
    """A parent run's table of one flow's units (step, name, identity, run id, reused)."""
    return f"{UNITS_FOLDER}/{flow_name}.csv"


def figure_path(name: str, folder: str | None = FIGURES_FOLDER) -> str:
    """The artifact path of figure `name` (PNG), in `folder` or at the run's root."""
    return f"{folder}/{name}.png" if folder else f"{name}.png"


UNITS_CSVS = (units_csv("factorisation"), units_csv("mlp_grid"))
U_SCATTER_PNG = figure_path(U_SCATTER)

# --- The experiment's saved view of its runs table -----------------------------------------------
# MLflow's saved views of a runs table, one experiment tag each
VIEW_TAG = "mlflow.sharedViewState."
RUNS_VIEW = "lab2: the lab's groups"
# Group rows average every column, params too (lr 0.1 shows as 0.10000000000000002): the label
# names the params.
RUNS_COLUMNS = (
    "metrics.`val_accuracy`",
    "metrics.`train_accuracy`",
    "metrics.`val_loss`",
    "metrics.`train_loss`",
)
# The run-name column holds the group labels, "Group: " before each: pixels, measured in Chromium.
MIN_RUN_NAME_WIDTH, RUN_NAME_PADDING, CHARACTER_WIDTH = 230, 100, 8


def view_state(labels: Sequence[str], columns: Sequence[str] = RUNS_COLUMNS) -> str:
    """The runs table's state as MLflow's UI saves it (JSON, zlib-compressed, base64).

    Sorting by the group tag lists the child runs flat (by start time they fold under their
    parent); a width applies only to a column named in columnOrder; each group starts folded (its
    id: "tag.lab2.group.LABEL"); SHOW_ALL charts every group, not the first 10.
    """
    name_column = "attributes.`Run Name`"
    label_width = RUN_NAME_PADDING + CHARACTER_WIDTH * max(map(len, labels), default=0)
    state = {
        "searchFilter": "",
        "orderByKey": f"tags.`{GROUP_TAG}`",
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
        "groupsExpanded": {f"tag.{GROUP_TAG}.{label}": False for label in labels},
        "groupBy": {
            "aggregateFunction": "average",
            "groupByKeys": [{"mode": "tag", "groupByData": GROUP_TAG}],
        },
        "globalLineChartConfig": {
            "xAxisKey": "step",
            "lineSmoothness": 0,
            "selectedXAxisMetricKey": "",
        },
        "chartsSearchFilter": "accuracy",  # the chart view opens on the accuracies, a bar per group
    }
    return base64.b64encode(zlib.compress(json.dumps(state, sort_keys=True).encode(), 9)).decode()
