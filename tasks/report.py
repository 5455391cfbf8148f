"""The lab's report, from what a parent run holds: read back from MLflow, written as report.md and
report.html on the run, and shown as the Prefect artifact lab-report of the top flow run."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import MarkdownArtifact

from lab2.tasks import tracking
from lab2.tasks.flow_run import top_flow_run_id
from lab2.tasks.layout import (
    FACTORISATION_CSV,
    FIGURES_FOLDER,
    MLP_CELLS_CSV,
    RECONSTRUCTION_CSV,
    REPORT_HTML,
    REPORT_MD,
    SEED_PAIRS_CSV,
    SEED_SUMMARY_CSV,
    U_ROWS_CSV,
)

if TYPE_CHECKING:
    from lab2.core.lab_report import RunResults


# The parent run's files behind each table the report reads (lab2.core.lab_report.TABLES).
REPORT_TABLES = {
    "factorisation": FACTORISATION_CSV,
    "cells": MLP_CELLS_CSV,
    "seed_summary": SEED_SUMMARY_CSV,
    "seed_pairs": SEED_PAIRS_CSV,
    "u_rows": U_ROWS_CSV,
    "reconstruction": RECONSTRUCTION_CSV,
}


class IncompleteRun(LookupError):
    """A run that lacks numbers the lab report needs."""

    def __init__(self, run_id: str, missing: list[str]) -> None:
        super().__init__(f"run {run_id} lacks what the report needs: {', '.join(missing)}")
        self.missing = missing


@dataclass(frozen=True)
class LabReport:
    """The lab report of a run: its markdown, its self-contained HTML, the figures the markdown
    links (path → PNG)."""

    run_id: str
    markdown: str
    html: str
    figures: dict[str, bytes]


@task
def publish_report(parent_run_id: str) -> str | None:
    """The lab's report, from what the parent run now holds: report.md and report.html on the run,
    and the Prefect markdown artifact lab-report of the top flow run; returns where report.html
    opens. None, with what it lacks logged, for a run that cannot answer the lab (a grid without
    the lab's six cells)."""
    from lab2.core.lab_report import figures_as_notes

    try:
        report = lab_report_of(parent_run_id)
    except IncompleteRun as incomplete:
        get_run_logger().info("No lab report: the run lacks %s", ", ".join(incomplete.missing))
        return None
    tracking.log_text(parent_run_id, report.markdown, REPORT_MD)
    tracking.log_text(parent_run_id, report.html, REPORT_HTML)
    location = tracking.artifact_location(parent_run_id, REPORT_HTML)
    MarkdownArtifact(
        key="lab-report",
        markdown=f"{_report_link(location)}\n\n{figures_as_notes(report.markdown)}",
        flow_run_id=top_flow_run_id(),
        description=f"The lab answered from MLflow run {parent_run_id}, every claim of the "
        "original report checked",
    ).create()
    return location


def _report_link(location: str) -> str:
    """The Prefect artifact's first line: where report.html, with its figures, opens."""
    if location.startswith(("http://", "https://")):
        return (
            f"**[The whole report, its figures embedded: {REPORT_HTML} in the MLflow UI]"
            f"({location})**"
        )
    return (
        f"**The whole report, its figures embedded:** `{location}` (or in `lab2 ui`: the run's "
        f"Artifacts, {REPORT_HTML})"
    )


def lab_report_of(run_id: str) -> LabReport:
    """The lab report written from what a run holds; IncompleteRun naming each number it lacks."""
    from lab2.core.lab_report import lab_report, missing_numbers, report_html

    results = read_run_results(run_id)
    if missing := missing_numbers(results):
        raise IncompleteRun(run_id, missing)
    markdown = lab_report(results)
    linked = [path for path in results.figures.values() if f"({path})" in markdown]
    figures = tracking.read_artifacts(run_id, linked)
    return LabReport(run_id, markdown, report_html(markdown, figures), figures)


def read_run_results(run_id: str) -> RunResults:
    """What the lab report reads from a lab2 parent run: its params, tables, figure paths and
    model, and its link in the MLflow UI (a server's page, else the route `lab2 ui` serves)."""
    from lab2.core.lab_report import RunResults  # torch: the report's, not a rerun's

    run = tracking.read_run(run_id)
    held = tracking.read_artifacts(run_id, list(REPORT_TABLES.values()))
    tables = {
        key: pd.read_csv(BytesIO(held[path])) for key, path in REPORT_TABLES.items() if path in held
    }
    figures = {Path(p).stem: p for p in tracking.list_artifacts(run_id, FIGURES_FOLDER)}
    models = run.outputs.model_outputs if run.outputs else []
    link = tracking.run_url(run_id) or tracking.run_link(run_id, run.info.experiment_id)
    model = f"models:/{models[0].model_id}" if models else None
    return RunResults(run_id, link, run.data.params, tables, figures, model)
