"""`lab2` with nothing to do, as a flow run on a Prefect server: it records the run in MLflow and
computes nothing; and the `lab2` deployment's flow, which is that when it can and the whole
pipeline otherwise."""

from __future__ import annotations

from prefect import flow
from prefect.states import Completed, State

from lab2.core.params import Lab2Params
from lab2.tasks.flow_run import called_for_its_data
from lab2.tasks.rerun import Rerun, earlier_run, rerun_if_done
from lab2.tasks.tracking import RunRecord
from lab2.tasks.watch import announce, verdict_state


# the flow people open; called with a built record
@called_for_its_data
@flow(name="lab2", validate_parameters=False)
def lab2_rerun(experiment: str, record: RunRecord, candidate_run_id: str) -> State[Rerun | None]:
    """Every unit and result of this run is in MLflow already: a parent run that copies the results
    and links the units (None if a unit went missing since the CLI looked: the whole pipeline
    runs then), announced since the last run with the same parameters, in a state named by that
    verdict."""
    return _announced(rerun_if_done(experiment, record, candidate_run_id))


@flow(name="lab2")
def lab2_scheduled(params: Lab2Params = Lab2Params()) -> object:
    """Lab 2 end to end, as the `lab2` deployment runs it: a night with nothing new (a FINISHED run
    of the same parameters, data, code and packages, every unit still there) records a rerun
    without loading torch; any other runs the whole pipeline in this flow run."""
    earlier = None if params.force else earlier_run(params)
    done = rerun_if_done(params.experiment, *earlier, printed=False) if earlier else None
    if done is not None:
        return _announced(done)
    from lab2.flows.pipeline import lab2  # torch and the pipeline, only for work to do

    return lab2.fn(params)


def _announced(done: Rerun | None) -> State[Rerun | None]:
    if done is None or done.since is None:
        return Completed(data=done)
    announce(done.run_id, done.since)
    return verdict_state(done, done.since)
