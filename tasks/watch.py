"""Since the last run, in Prefect: record what goes into a run, judge it against its predecessor
(`lab2.tasks.predecessor`), and say so where Prefect's users look (an artifact, the flow run's state
name, an event an automation can act on)."""

from __future__ import annotations

from importlib.metadata import version
from typing import TYPE_CHECKING, SupportsFloat, TypeVar

import pandas as pd
from prefect import task
from prefect.artifacts import MarkdownArtifact
from prefect.events import emit_event
from prefect.states import Completed, State

from lab2.core.identity import compute_environment, recipe_digests
from lab2.core.params import Lab2Params
from lab2.core.watch import (
    CHANGED,
    VERDICTS,
    Inputs,
    SinceLastRun,
    row_digests,
    since_last_run_markdown,
)
from lab2.tasks import tracking
from lab2.tasks.flow_run import top_flow_run_id
from lab2.tasks.layout import BEST_TAG, CHANGED_EVENT, INPUTS_JSON
from lab2.tasks.predecessor import since_last_run
from lab2.tasks.tracking import RunRecord

if TYPE_CHECKING:
    from lab2.flows.factorisation import FactorisationResult
    from lab2.flows.mlp_grid import GridResult

R = TypeVar("R")

STATE_NAMES = {
    v: v.replace("-", " ").capitalize() for v in VERDICTS
}  # "within-noise" → "Within noise"


@task
def record_inputs(parent_run_id: str, params: Lab2Params) -> Inputs:
    """What goes into this run besides its parameters, as inputs.json on the parent: the recipe's
    files, the data (digest and rows) and the environment (versions, the grid's torch threads)."""
    from lab2.tasks.compute import load_data  # torch: the pipeline's, not a rerun's

    data = load_data(params.dataset, params.label_column)
    environment = {
        **compute_environment(),
        "mlflow": version("mlflow"),
        "prefect": version("prefect"),
        "torch_threads": str(params.torch_threads),
    }
    inputs = Inputs(
        recipe_digests(),
        data.digest,
        row_digests(data.features.numpy(), data.labels.numpy()),
        environment,
    )
    tracking.log_text(parent_run_id, inputs.to_json(), INPUTS_JSON)
    return inputs


@task
def watch_since_last_run(
    parent_run_id: str, params_key: str, inputs: Inputs, q1: FactorisationResult, q2: GridResult
) -> SinceLastRun:
    """This run against the last FINISHED run with the same parameters, announced (`announce`)."""
    units = pd.concat([q1.units, q2.units], ignore_index=True)
    best = q2.seeds.best["val_accuracy_mean"]
    if not isinstance(best, SupportsFloat):
        raise TypeError(f"the best group's val accuracy is not a number: {best!r}")
    tracking.log_to_run(parent_run_id, RunRecord(tags={BEST_TAG: repr(float(best))}))
    since = since_last_run(parent_run_id, params_key, inputs, q1.summary, q2.cells, units)
    announce(parent_run_id, since)
    return since


def announce(parent_run_id: str, since: SinceLastRun) -> None:
    """The verdict as the Prefect artifact `since-last-run` of the top flow run and, when the
    numbers changed, the event lab2.watch.changed (its verdict, causes and link) for an
    automation to act on."""
    MarkdownArtifact(
        key="since-last-run",
        markdown=since_last_run_markdown(since),
        flow_run_id=top_flow_run_id(),
        description=f"MLflow run {parent_run_id} against the last run with the same parameters",
    ).create()
    if since.predecessor and since.verdict == CHANGED:
        emit_event(
            event=CHANGED_EVENT,
            resource={
                "prefect.resource.id": f"mlflow.run.{parent_run_id}",
                "prefect.resource.name": f"lab2 run {parent_run_id}",
            },
            payload={
                "verdict": since.verdict,
                "cause": "; ".join(since.causes),
                "run_id": parent_run_id,
                "predecessor": since.predecessor,
                "link": tracking.run_url(parent_run_id) or "",
                "units": [u.evidence for u in since.units if u.verdict == CHANGED],
            },
        )


def verdict_state(result: R, since: SinceLastRun) -> State[R]:
    """A Completed state named by the verdict (Prefect's runs list shows a changed night at a
    glance), holding `result`."""
    if since.predecessor is None:
        return Completed(data=result)
    return Completed(
        data=result,
        name=STATE_NAMES[since.verdict],
        message=f"since run {since.predecessor}: {since.verdict}",
    )
