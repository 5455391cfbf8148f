"""The whole lab: Q1 (factorisation) and Q2 (MLP grid) under one MLflow parent run."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from prefect import flow, get_run_logger
from prefect.states import State

from lab2.core.describe import best_label, units_sentence
from lab2.core.params import Lab2Params
from lab2.core.seeds import SeedComparison
from lab2.core.watch import SinceLastRun, since_last_run_line, since_last_run_markdown
from lab2.flows.factorisation import factorise_matrices
from lab2.flows.mlp_grid import train_grid
from lab2.tasks import tracking
from lab2.tasks.compute import check_inputs
from lab2.tasks.figures import figure_process
from lab2.tasks.flow_run import called_for_its_data, pipeline_run
from lab2.tasks.outputs import describe_parent
from lab2.tasks.report import publish_report
from lab2.tasks.rerun import pipeline_record
from lab2.tasks.resume import settle
from lab2.tasks.watch import record_inputs, verdict_state, watch_since_last_run


@dataclass(frozen=True)
class Lab2Result:
    """Everything `lab2 run` reports: the parent run, Q1's table, Q2's cells and seed comparison,
    the units (each run computed or reused), the link to the runs in the MLflow UI, the report
    and the verdict since the last run."""

    parent_run_id: str
    factorisation: pd.DataFrame
    cells: pd.DataFrame
    seeds: SeedComparison
    units: pd.DataFrame
    runs_url: str | None  # None for a local store: `lab2 ui` serves its UI
    report: str | None = (
        # where the lab report (report.html on the parent run) opens, when the run answers the lab
        None
    )
    since: SinceLastRun | None = None  # against the last run with the same parameters


@called_for_its_data
@flow(name="lab2")
def lab2(params: Lab2Params = Lab2Params()) -> State[Lab2Result]:
    """Lab 2 end to end: check every input, record what goes in, Q1 factorisation by GD vs SVD, the
    Q2 MLP grid, what changed since the last run with these parameters, then the parent run's
    description and the lab's report; the flow run ends in a state named by that verdict, holding
    the Lab2Result a call returns. Units with a FINISHED run of their identity are reused; `force`
    recomputes everything."""
    check_inputs(params)
    # One figure process for Q1's figure and Q2's, started first: its imports overlap the parent
    # run's creation.
    with (
        figure_process(),
        pipeline_run(params.experiment, "lab2", pipeline_record(params)) as parent,
    ):
        inputs = record_inputs(parent, params)
        q1 = factorise_matrices(parent, params.factorisation)
        q2 = train_grid(parent, params.grid)
        units = pd.concat([q1.units, q2.units], ignore_index=True)
        since = watch_since_last_run(parent, params.params_key(), inputs, q1, q2)
        # a first run's tag says so
        since_section = since_last_run_markdown(since) if since.predecessor else None
        url = describe_parent(
            parent,
            [q1.what_ran, q2.what_ran],
            units,
            q1.summary,
            q2.seeds,
            q2.winner,
            since_section,
        )
        report = publish_report(parent) if params.report else None
        settle(parent)
    logger = get_run_logger()  # the tables are the flow runs' artifacts
    logger.info("Best group: %s. Units: %s", best_label(q2.seeds), units_sentence(units))
    logger.info(since_last_run_line(since))
    logger.info(
        "MLflow parent run %s; every run in the MLflow UI: %s",
        parent,
        url or tracking.ui_command(tracking.tracking_uri()),
    )
    result = Lab2Result(parent, q1.summary, q2.cells, q2.seeds, units, url, report, since)
    return verdict_state(result, since)
