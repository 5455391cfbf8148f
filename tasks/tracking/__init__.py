"""Every MLflow call of lab2, split by job; this package's names are what the tasks and flows use.

- `connection`: which store, checked before any run exists; redaction; a client whose every call is retried.
- `runs`: writing runs — the parent, child runs written whole, datasets, figures, the winner model.
- `queries`: reading runs back — the latest grid run, its cells and units (for `lab2 compare`).
- `resume`: unit identities, runs created once, runs of gone processes marked KILLED.
- `links`: links into the MLflow UI and to the Prefect flow run.
"""

from lab2.core.params import DEFAULT_EXPERIMENT
from lab2.tasks.tracking.connection import (
    TrackingError,
    check_tracking_uri,
    client,
    experiment_of,
    redact,
    retrying,
    tracking_uri,
    ui_command,
)
from lab2.tasks.tracking.links import run_link, runs_url, set_runs_view, view_key
from lab2.tasks.tracking.queries import (
    experiment_name_of,
    latest_grid_run,
    metric_history,
    read_cells,
    read_units,
    run_data,
    run_params,
    run_tags,
)
from lab2.tasks.tracking.resume import FinishedRun, finished_units, owner, owner_of, settle_identities
from lab2.tasks.tracking.runs import (
    DESCRIPTION_TAG,
    RunRecord,
    WinnerModel,
    copy_artifact,
    dataset,
    log_child_run,
    log_text,
    log_to_run,
    log_winner_model,
    pipeline_run,
    set_description,
)

__all__ = [
    "DEFAULT_EXPERIMENT", "DESCRIPTION_TAG", "FinishedRun", "RunRecord", "TrackingError", "WinnerModel",
    "check_tracking_uri", "client", "copy_artifact", "dataset", "experiment_name_of", "experiment_of", "finished_units",
    "latest_grid_run", "log_child_run", "log_text", "log_to_run", "log_winner_model", "metric_history",
    "owner", "owner_of", "pipeline_run", "read_cells", "read_units", "redact", "retrying", "run_data",
    "run_link", "run_params", "run_tags", "runs_url", "set_description", "set_runs_view", "settle_identities",
    "tracking_uri", "ui_command", "view_key",
]
