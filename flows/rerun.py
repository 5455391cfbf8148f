"""`lab2` with nothing to do, as a flow run on a Prefect server: it records the run in MLflow and computes nothing."""

from __future__ import annotations

from prefect import flow

from lab2.tasks.tracking import RunRecord
from lab2.tasks.tracking.reruns import Rerun, rerun_if_done
from lab2.tasks.watch import announce, verdict_state


@flow(name="lab2", validate_parameters=False)  # the flow people open; called with a built record
def lab2_rerun(experiment: str, record: RunRecord, candidate_run_id: str) -> Rerun | None:
    """Every unit and result of this run is in MLflow already: a parent run that copies the results and links the
    units (None if a unit went missing since the CLI looked: the whole pipeline runs then), announced since the
    last run with the same parameters, in a state named by that verdict."""
    done = rerun_if_done(experiment, record, candidate_run_id)
    if done is None or done.since is None:
        return done
    announce(done.run_id, done.since)
    return verdict_state(done, done.since)
