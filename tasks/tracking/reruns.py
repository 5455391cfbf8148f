"""A rerun with nothing to do: find the FINISHED pipeline run of the same run key whose units are all still there,
and record a new parent run from it (params, tags, files, model, description) without computing anything."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Param, Run, RunTag
from mlflow.exceptions import MlflowException

from lab2.core.describe import how_it_ran, results_part, under_since_last_run
from lab2.core.params import InputError, Lab2Params
from lab2.core.watch import Inputs, SinceLastRun, since_last_run_markdown
from lab2.tasks.tracking.connection import (
    check_tracking_uri,
    client,
    search_runs,
    store_exists,
    tracking_uri,
)
from lab2.tasks.tracking.links import artifact_location, prefect_tags, run_link, saved_runs_url
from lab2.tasks.tracking.predecessors import BEST_TAG, INPUTS_FILE, since_last_run
from lab2.tasks.tracking.runs import (
    DESCRIPTION_TAG,
    IDENTITY_TAG,
    PARAMS_KEY_TAG,
    RunRecord,
    parent_run,
    set_description,
)

RUN_KEY_TAG = "lab2.run_key"  # the identity of a whole pipeline run (lab2.core.identity.run_key)
RERUN_OF_TAG = "lab2.rerun_of"  # a rerun with nothing to do: the run whose results it copied
TERMINAL_FILE = "terminal.txt"  # what `lab2 run` printed of the results; a rerun prints it again
REPORT_MARKDOWN, REPORT_HTML = (
    "report.md",
    "report.html",
)  # the lab report on a parent run (a rerun copies it)
_IDS_PER_QUERY = 200


@dataclass(frozen=True)
class Rerun:
    """A rerun with nothing to do, recorded: its parent run, the run it copied, what that run printed, its units."""

    run_id: str
    rerun_of: str
    terminal: str  # "" when nothing prints it (a deployment's flow run)
    units: int
    runs_url: str | None  # the runs in an MLflow server's UI (None for a local store)
    report: str | None  # where the lab report it copied opens (None if the run it copied had none)
    since: (
        SinceLastRun | None
    )  # against the last run with the same parameters (None if the copied run recorded no inputs)


@dataclass(frozen=True)
class Predecessor:
    """A FINISHED pipeline run with the run key asked for: its id, its files (downloaded), its units and models."""

    run_id: str
    experiment_id: str
    files: Path
    units: (
        pd.DataFrame
    )  # step, name, identity, run_id, reused: every unit of the run, all of them FINISHED now
    model_ids: list[str]
    params: dict[str, str]
    tags: dict[str, str]


def pipeline_record(params: Lab2Params) -> RunRecord:
    """What a `lab2` parent run records as it opens: its params, how its grid runs, its run key."""
    tags = {
        "lab2.task_runner": params.task_runner,
        RUN_KEY_TAG: params.run_key(),
        PARAMS_KEY_TAG: params.params_key(),
    }
    return RunRecord(params=params.model_dump(), tags=tags)


def earlier_run(params: Lab2Params) -> tuple[RunRecord, str] | None:
    """The record of a `lab2` run of `params` and the newest FINISHED run of its run key, which a rerun may reuse; None
    without one, or with a dataset or store that cannot be read (the pipeline's own checks then say what is wrong)."""
    try:
        record = pipeline_record(params)
        check_tracking_uri(tracking_uri())
        found = candidates(params.experiment, record.tags[RUN_KEY_TAG])
    except (OSError, InputError):
        return None
    return (record, found[0].info.run_id) if found else None


def candidates(experiment: str, run_key: str) -> list[Run]:
    """FINISHED pipeline runs of `experiment` with this run key, newest first (one search; nothing downloaded). A
    local store that is not there yet has none, and is not created: the inputs are checked first."""
    if not store_exists(tracking_uri()):
        return []
    exp = client(f"experiment {experiment!r}").get_experiment_by_name(experiment)
    if exp is None:
        return []
    query = f"tags.`{RUN_KEY_TAG}` = '{run_key}' and attributes.status = 'FINISHED'"
    return sorted(
        search_runs(exp.experiment_id, query), key=lambda r: r.info.end_time or 0, reverse=True
    )


def rerun_if_done(
    experiment: str, record: RunRecord, candidate_run_id: str, printed: bool = True
) -> Rerun | None:
    """If the candidate run (the newest of `candidates`) still has every unit run FINISHED with its identity and its models
    READY, and (when the rerun is `printed`) what `lab2 run` printed of it: a new parent run (`record`) holding what it
    holds. Else None: the run has work."""
    with tempfile.TemporaryDirectory(prefix="lab2-rerun-") as folder:
        predecessor = _whole(candidate_run_id, Path(folder), printed)
        if predecessor is None:
            return None
        run_id, since = _record(
            predecessor,
            experiment,
            {**record.tags, RERUN_OF_TAG: predecessor.run_id},
            record.params,
        )
        terminal = (predecessor.files / TERMINAL_FILE).read_text() if printed else ""
        report = (
            artifact_location(run_id, REPORT_HTML)
            if (predecessor.files / REPORT_HTML).is_file()
            else None
        )
        return Rerun(
            run_id,
            predecessor.run_id,
            terminal,
            len(predecessor.units),
            saved_runs_url(predecessor.experiment_id),
            report,
            since,
        )


def _whole(run_id: str, folder: Path, printed: bool) -> Predecessor | None:
    """The run with its files, if they hold its units (and what a rerun prints, when it is `printed`) and every unit
    and model is still there."""
    run = client(f"run {run_id}").get_run(run_id)
    exp_id = run.info.experiment_id
    files = Path(client(f"the files of run {run_id}").download_artifacts(run_id, "", str(folder)))
    tables = sorted((files / "units").glob("*.csv"))
    if (printed and not (files / TERMINAL_FILE).is_file()) or not tables:
        return None
    units = pd.concat(
        [pd.read_csv(t, dtype={"identity": str, "run_id": str}) for t in tables], ignore_index=True
    )
    model_ids = [m.model_id for m in run.outputs.model_outputs] if run.outputs else []
    if not _units_finished(exp_id, units) or not all(_ready(m) for m in model_ids):
        return None
    return Predecessor(
        run.info.run_id, exp_id, files, units, model_ids, dict(run.data.params), dict(run.data.tags)
    )


def _units_finished(exp_id: str, units: pd.DataFrame) -> bool:
    """Every unit's run is there, FINISHED, and still carries the unit's identity (not deleted or superseded)."""
    found = {}
    ids = list(units["run_id"])
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ", ".join(f"'{i}'" for i in ids[start : start + _IDS_PER_QUERY])
        found |= {r.info.run_id: r for r in search_runs(exp_id, f"attributes.run_id IN ({chunk})")}
    return all(
        (run := found.get(u.run_id)) is not None
        and run.info.status == "FINISHED"
        and run.data.tags.get(IDENTITY_TAG) == u.identity
        for u in units.itertuples()
    )


def _ready(model_id: str) -> bool:
    try:
        return (
            client(f"logged model {model_id}").get_logged_model(model_id).status
            == LoggedModelStatus.READY
        )
    except MlflowException:
        return False


def _record(
    predecessor: Predecessor, experiment: str, tags: dict[str, str], params: dict[str, object]
) -> tuple[str, SinceLastRun | None]:
    """A new parent run with these params and tags, and what `predecessor` holds: its other params, its unit counts and best group,
    its files with every unit marked reused, its models, its description's results followed by how this run ran,
    under what changed since the last run with the same parameters."""
    with parent_run(experiment, "lab2", RunRecord(params=params, tags=tags)) as run_id:
        what = f"the copy of run {predecessor.run_id} into run {run_id}"
        copied_tags = {}  # unit counts: the predecessor's other tags say how it ran, and this run's own say how this one did
        for flow in {k.split(".")[1] for k in predecessor.tags if k.endswith(".units_reused")}:
            copied_tags |= {
                f"lab2.{flow}.units_reused": str(_count(predecessor, flow)),
                f"lab2.{flow}.units_computed": "0",
            }
        copied_tags |= (
            {BEST_TAG: predecessor.tags[BEST_TAG]} if BEST_TAG in predecessor.tags else {}
        )
        kept = [Param(k, v) for k, v in predecessor.params.items() if k not in params]
        client(what).log_batch(
            run_id, params=kept, tags=[RunTag(k, v) for k, v in copied_tags.items()]
        )
        for table in (predecessor.files / "units").glob("*.csv"):
            pd.read_csv(table, dtype=str).assign(reused=True).to_csv(table, index=False)
        client(what).log_artifacts(run_id, str(predecessor.files))
        if predecessor.model_ids:
            client(what).log_outputs(
                run_id, [LoggedModelOutput(m, step=0) for m in predecessor.model_ids]
            )
        since = _since_last_run(run_id, tags[PARAMS_KEY_TAG], predecessor)
        set_description(
            run_id,
            under_since_last_run(
                since and since_last_run_markdown(since), _description(predecessor)
            ),
        )
    return run_id, since


def _since_last_run(run_id: str, params_key: str, copied: Predecessor) -> SinceLastRun | None:
    """The rerun against the last run with its parameters, on the inputs and tables it copied (None if the copied
    run recorded no inputs)."""
    files = copied.files
    if not (files / INPUTS_FILE).is_file():
        return None
    tables = {name: pd.read_csv(files / name) for name in ("factorisation.csv", "mlp_cells.csv")}
    inputs = Inputs.from_json((files / INPUTS_FILE).read_text())
    return since_last_run(
        run_id,
        params_key,
        inputs,
        tables["factorisation.csv"],
        tables["mlp_cells.csv"],
        copied.units,
    )


def _count(predecessor: Predecessor, flow: str) -> int:
    """Units of one flow of the predecessor: computed or reused then, reused now."""
    return sum(
        int(predecessor.tags.get(f"lab2.{flow}.units_{kind}", 0)) for kind in ("reused", "computed")
    )


def _description(predecessor: Predecessor) -> str:
    """The predecessor's results (its whole description.md when its tag was cut), then how this run ran."""
    whole = predecessor.files / "description.md"
    results = results_part(
        whole.read_text() if whole.is_file() else predecessor.tags.get(DESCRIPTION_TAG, "")
    )
    exp_id = predecessor.experiment_id
    reused = [(u.name, run_link(u.run_id, exp_id)) for u in predecessor.units.itertuples()]
    previous = (predecessor.run_id, run_link(predecessor.run_id, exp_id))
    return (
        f"{results}\n\n{how_it_ran(prefect_tags().get('prefect.flow_run_url'), reused, previous)}"
    )
