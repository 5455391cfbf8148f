"""A rerun with nothing to do: find the FINISHED pipeline run of the same run key whose units are
all still there, and record a new parent run from it (params, tags, files, model, description)
without computing anything."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.entities import Run

from lab2.core.describe import how_it_ran, results_part, under_since_last_run
from lab2.core.errors import InputError
from lab2.core.params import Lab2Params
from lab2.core.watch import Inputs, SinceLastRun, since_last_run_markdown
from lab2.tasks import tracking
from lab2.tasks.flow_run import flow_run_url, pipeline_run
from lab2.tasks.layout import (
    BEST_TAG,
    DESCRIPTION_MD,
    DESCRIPTION_TAG,
    FACTORISATION_CSV,
    IDENTITY_TAG,
    INPUTS_JSON,
    MLP_CELLS_CSV,
    PARAMS_KEY_TAG,
    REPORT_HTML,
    RERUN_OF_TAG,
    RUN_KEY_TAG,
    TASK_RUNNER_TAG,
    TERMINAL_TXT,
    UNITS_FOLDER,
    units_tag,
)
from lab2.tasks.predecessor import since_last_run

_IDS_PER_QUERY = 200


@dataclass(frozen=True)
class Rerun:
    """A rerun with nothing to do, recorded: its parent run, the run it copied, what that run
    printed, its units."""

    run_id: str
    rerun_of: str
    terminal: str  # "" when nothing prints it (a deployment's flow run)
    units: int
    runs_url: str | None  # the runs in an MLflow server's UI (None for a local store)
    report: str | None  # where the lab report it copied opens (None if that run had none)
    # against the last run with the same parameters (None if the copied run recorded no inputs)
    since: SinceLastRun | None


@dataclass(frozen=True)
class Predecessor:
    """A FINISHED pipeline run with the run key asked for: its id, its files (downloaded), its units
    and models."""

    run_id: str
    experiment_id: str
    files: Path
    units: pd.DataFrame  # step, name, identity, run_id, reused: every unit, all FINISHED now
    model_ids: list[str]
    params: dict[str, str]
    tags: dict[str, str]


def pipeline_record(params: Lab2Params) -> tracking.RunRecord:
    """What a `lab2` parent run records as it opens: its params, how its grid runs, its run key."""
    tags = {
        TASK_RUNNER_TAG: params.task_runner,
        RUN_KEY_TAG: params.run_key(),
        PARAMS_KEY_TAG: params.params_key(),
    }
    return tracking.RunRecord(params=params.model_dump(), tags=tags)


def earlier_run(params: Lab2Params) -> tuple[tracking.RunRecord, str] | None:
    """The record of a `lab2` run of `params` and the newest FINISHED run of its run key, which a
    rerun may reuse; None without one, or with a dataset or store that cannot be read (the
    pipeline's own checks then say what is wrong)."""
    try:
        record = pipeline_record(params)
        tracking.check_tracking_uri(tracking.tracking_uri())
        found = candidates(params.experiment, record.tags[RUN_KEY_TAG])
    except (OSError, InputError):
        return None
    return (record, found[0].info.run_id) if found else None


def candidates(experiment: str, run_key: str) -> list[Run]:
    """FINISHED pipeline runs of `experiment` with this run key, newest first (one search; nothing
    downloaded). A local store that is not there yet has none, and is not created: the inputs are
    checked first."""
    if not tracking.store_exists(tracking.tracking_uri()):
        return []
    exp_id = tracking.find_experiment(experiment)
    if exp_id is None:
        return []
    query = f"tags.`{RUN_KEY_TAG}` = '{run_key}' and attributes.status = 'FINISHED'"
    found = tracking.search_runs(exp_id, query)
    return sorted(found, key=lambda r: r.info.end_time or 0, reverse=True)


def rerun_if_done(
    experiment: str, record: tracking.RunRecord, candidate_run_id: str, printed: bool = True
) -> Rerun | None:
    """If the candidate run (the newest of `candidates`) still has every unit run FINISHED with its
    identity and its models READY, and (when the rerun is `printed`) what `lab2 run` printed of it:
    a new parent run (`record`) holding what it holds. Else None: the run has work."""
    with tempfile.TemporaryDirectory(prefix="lab2-rerun-") as folder:
        predecessor = _whole(candidate_run_id, Path(folder), printed)
        if predecessor is None:
            return None
        tags = {**record.tags, RERUN_OF_TAG: predecessor.run_id}
        run_id, since = _record(predecessor, experiment, tags, record.params)
        terminal = (predecessor.files / TERMINAL_TXT).read_text() if printed else ""
        has_report = (predecessor.files / REPORT_HTML).is_file()
        report = tracking.artifact_location(run_id, REPORT_HTML) if has_report else None
        return Rerun(
            run_id,
            predecessor.run_id,
            terminal,
            len(predecessor.units),
            tracking.saved_runs_url(predecessor.experiment_id),
            report,
            since,
        )


def _whole(run_id: str, folder: Path, printed: bool) -> Predecessor | None:
    """The run with its files, if they hold its units (and what a rerun prints, when it is
    `printed`) and every unit and model is still there."""
    run = tracking.read_run(run_id)
    exp_id = run.info.experiment_id
    files = Path(tracking.download_artifact(run_id, "", str(folder)))
    tables = sorted((files / UNITS_FOLDER).glob("*.csv"))
    if (printed and not (files / TERMINAL_TXT).is_file()) or not tables:
        return None
    units = pd.concat(
        [pd.read_csv(t, dtype={"identity": str, "run_id": str}) for t in tables], ignore_index=True
    )
    model_ids = [m.model_id for m in run.outputs.model_outputs] if run.outputs else []
    if not _units_finished(exp_id, units) or not all(map(tracking.model_ready, model_ids)):
        return None
    return Predecessor(
        run.info.run_id, exp_id, files, units, model_ids, dict(run.data.params), dict(run.data.tags)
    )


def _units_finished(exp_id: str, units: pd.DataFrame) -> bool:
    """Every unit's run is there, FINISHED, and still carries the unit's identity (not deleted or
    superseded)."""
    found: dict[str, Run] = {}
    ids = list(units["run_id"])
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ", ".join(f"'{i}'" for i in ids[start : start + _IDS_PER_QUERY])
        query = f"attributes.run_id IN ({chunk})"
        found |= {r.info.run_id: r for r in tracking.search_runs(exp_id, query)}
    return all(
        (run := found.get(u.run_id)) is not None
        and run.info.status == "FINISHED"
        and run.data.tags.get(IDENTITY_TAG) == u.identity
        for u in units.itertuples()
    )


def _record(
    predecessor: Predecessor, experiment: str, tags: dict[str, str], params: Mapping[str, object]
) -> tuple[str, SinceLastRun | None]:
    """A new parent run with these params and tags, and what `predecessor` holds: its other params,
    its unit counts and best group, its files with every unit marked reused, its models, its
    description's results followed by how this run ran, under what changed since the last run with
    the same parameters."""
    with pipeline_run(experiment, "lab2", tracking.RunRecord(params=params, tags=tags)) as run_id:
        kept = {k: v for k, v in predecessor.params.items() if k not in params}
        tracking.log_to_run(run_id, tracking.RunRecord(params=kept, tags=_copied_tags(predecessor)))
        for table in (predecessor.files / UNITS_FOLDER).glob("*.csv"):
            pd.read_csv(table, dtype=str).assign(reused=True).to_csv(table, index=False)
        tracking.log_folder(run_id, predecessor.files)
        if predecessor.model_ids:
            tracking.link_models(run_id, predecessor.model_ids)
        since = _since_last_run(run_id, tags[PARAMS_KEY_TAG], predecessor)
        description = _description(predecessor)
        section = since_last_run_markdown(since) if since is not None else None
        markdown = under_since_last_run(section, description)
        tracking.set_description(run_id, markdown)
    return run_id, since


def _copied_tags(predecessor: Predecessor) -> dict[str, str]:
    """Unit counts (every unit reused now) and the best group, from the predecessor; its other tags
    say how it ran, and this run's own say how this one did."""
    flows = {k.split(".")[1] for k in predecessor.tags if k.endswith(".units_reused")}
    tags = {}
    for flow in flows:
        tags[units_tag(flow, "reused")] = str(_count(predecessor, flow))
        tags[units_tag(flow, "computed")] = "0"
    if BEST_TAG in predecessor.tags:
        tags[BEST_TAG] = predecessor.tags[BEST_TAG]
    return tags


def _since_last_run(run_id: str, params_key: str, copied: Predecessor) -> SinceLastRun | None:
    """The rerun against the last run with its parameters, on the inputs and tables it copied (None
    if the copied run recorded no inputs)."""
    files = copied.files
    if not (files / INPUTS_JSON).is_file():
        return None
    inputs = Inputs.from_json((files / INPUTS_JSON).read_text())
    factorisation = pd.read_csv(files / FACTORISATION_CSV)
    cells = pd.read_csv(files / MLP_CELLS_CSV)
    return since_last_run(run_id, params_key, inputs, factorisation, cells, copied.units)


def _count(predecessor: Predecessor, flow: str) -> int:
    """Units of one flow of the predecessor: computed or reused then, reused now."""
    kinds = ("reused", "computed")
    return sum(int(predecessor.tags.get(units_tag(flow, kind), 0)) for kind in kinds)


def _description(predecessor: Predecessor) -> str:
    """The predecessor's results (its whole description.md when its tag was cut), then how this run
    ran."""
    whole = predecessor.files / DESCRIPTION_MD
    text = whole.read_text() if whole.is_file() else predecessor.tags.get(DESCRIPTION_TAG, "")
    exp_id = predecessor.experiment_id
    reused = [(u.name, tracking.run_link(u.run_id, exp_id)) for u in predecessor.units.itertuples()]
    previous = (predecessor.run_id, tracking.run_link(predecessor.run_id, exp_id))
    return f"{results_part(text)}\n\n{how_it_ran(flow_run_url(), reused, previous)}"
