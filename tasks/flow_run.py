"""The Prefect flow run a pipeline run belongs to: its MLflow parent run opened with the flow run's
tags, the Prefect artifact that links the two, and the top flow run that artifacts go on."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, ParamSpec, TypeVar, cast
from uuid import UUID

from lab2.tasks import tracking
from lab2.tasks.layout import (
    DEPLOYMENT_ID_TAG,
    DEPLOYMENT_NAME_TAG,
    FLOW_NAME_TAG,
    FLOW_RUN_ID_TAG,
    FLOW_RUN_NAME_TAG,
    FLOW_RUN_URL_TAG,
)

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.states import State


P = ParamSpec("P")
R = TypeVar("R")


def called_for_its_data(returns_state: Flow[P, State[R]]) -> Flow[P, R]:
    """A flow as its callers see it: calling it gives the data of the State it returns
    (`return_state=True` the State itself; so does its `.fn`, typed as the data)."""
    # Prefect's stubs type a call as the function's return type, here the State it unwraps
    return cast("Flow[P, R]", returns_state)


@contextmanager
def pipeline_run(experiment: str, run_name: str, record: tracking.RunRecord) -> Iterator[str]:
    """`tracking.parent_run` tagged with the current Prefect flow run, which gets an artifact
    linking it."""
    tagged = replace(record, tags={**prefect_tags(), **record.tags})
    with tracking.parent_run(experiment, run_name, tagged) as run_id:
        link_flow_run(run_id)
        yield run_id


def prefect_tags() -> dict[str, str]:
    """The Prefect flow run this pipeline run belongs to; its deployment and UI page when a Prefect
    server is in use. Under `lab2 run`'s temporary API (which sets PREFECT_UI_URL to "") the flow's
    name alone: its flow runs end with it, and a tag must not name a run nobody can open."""
    if "prefect" not in sys.modules:  # no flow run: a rerun with nothing to do, outside Prefect
        return {}
    from prefect.runtime import deployment, flow_run
    from prefect.settings import PREFECT_UI_URL

    if flow_run.id is None:
        return {}
    if os.environ.get("PREFECT_UI_URL") == "":
        return {FLOW_NAME_TAG: flow_run.flow_name}
    tags = {
        FLOW_RUN_ID_TAG: flow_run.id,
        FLOW_RUN_NAME_TAG: flow_run.name,
        FLOW_NAME_TAG: flow_run.flow_name,
    }
    if deployment.name is not None:
        tags |= {DEPLOYMENT_NAME_TAG: deployment.name, DEPLOYMENT_ID_TAG: deployment.id}
    if PREFECT_UI_URL.value():  # unset or empty: the API serves no UI, no page to link
        tags[FLOW_RUN_URL_TAG] = flow_run.ui_url
    return tags


def flow_run_url() -> str | None:
    """The current flow run's page in the Prefect UI, when a server with a UI runs it."""
    return prefect_tags().get(FLOW_RUN_URL_TAG)


def link_flow_run(run_id: str) -> None:
    """A Prefect artifact on the current flow run that leads to its MLflow parent run."""
    if "prefect" not in sys.modules:
        return
    from prefect.artifacts import create_link_artifact, create_markdown_artifact
    from prefect.runtime import flow_run

    if flow_run.id is None:
        return
    description = "The MLflow parent run of this flow run"
    if (url := tracking.run_url(run_id)) is not None:
        create_link_artifact(
            url, link_text=f"MLflow run {run_id}", key="mlflow-run", description=description
        )
        return
    uri = tracking.tracking_uri()
    text = (
        f"MLflow run `{run_id}` in `{tracking.redact(uri)}`: `{tracking.ui_command(uri)}` opens "
        f"the MLflow UI on that store and prints its link; the run's page is "
        f"`{tracking.run_link(run_id)}` there."
    )
    create_markdown_artifact(text, key="mlflow-run", description=description)


def top_flow_run_id() -> UUID | None:
    """The flow run a user opens: the top of the current flow run's tree (itself when alone)."""
    from prefect.runtime import flow_run

    root = flow_run.root_flow_run_id
    return UUID(str(root)) if root else None
