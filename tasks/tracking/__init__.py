"""Every MLflow call of lab2, split by job; this package's names are what the tasks and flows use.

- `connection`: which store, checked before any run exists; redaction; a client whose every call is retried.
- `runs`: writing runs — the parent, child runs written whole, datasets, figures, the winner model.
- `owners`: which process owns a run; runs created once; runs of gone processes marked KILLED.
- `queries`: reading runs back — the latest grid run, its cells, metric histories (for `lab2 compare`).
- `links`: links into the MLflow UI and to the Prefect flow run.
"""

from lab2.tasks.tracking.connection import (  # noqa: F401 - the package's names
    TrackingError,
    check_tracking_uri,
    client,
    experiment_id,
    experiment_of,
    redact,
    retrying,
    search_runs,
    tracking_uri,
    ui_command,
)
from lab2.tasks.tracking.links import (
    artifact_location,
    prefect_tags,
    run_link,
    run_url,
    runs_url,
    saved_runs_link,
    set_runs_view,
)  # noqa: F401
from lab2.tasks.tracking.owners import owner, owner_of, reap_stale_runs  # noqa: F401
from lab2.tasks.tracking.queries import (  # noqa: F401
    IncompleteRun,
    lab_report_of,
    last_finished_run,
    latest_grid_run,
    metric_history,
    read_artifacts,
    read_cells,
    read_run_results,
    run_history,
)
from lab2.tasks.tracking.runs import (  # noqa: F401
    DESCRIPTION_TAG,
    IDENTITY_TAG,
    VAL_CORRECT_TAG,
    RunRecord,
    WinnerModel,
    copy_artifact,
    dataset,
    log_child_run,
    log_pngs,
    log_text,
    log_to_run,
    log_winner_model,
    parent_run,
    set_description,
)
