"""The MLflow and Prefect UIs as a user meets them after `lab2 run`, read in a real browser.

A real `prefect server` and `lab2 run` against it, then the command that run ends with (`lab2
ui`: the MLflow UI on the run's store), both on free loopback ports in their own process groups;
Debian's Chromium (never a downloaded browser) driven by Playwright, a fresh profile per test.
Each screen is saved under docs/ for the README.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from lab2.cli.processes import free_port
from tests.helpers.http import request
from tests.helpers.processes import end_group, start_in_group

# One worker runs the whole module (pytest -n N --dist loadgroup): its tests share module-scoped
# servers.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("browser")]

BIN = Path(sys.executable).parent
DOCS = Path(__file__).resolve().parents[1] / "docs"
LAB_METRICS = {"train_accuracy", "val_accuracy", "train_loss", "val_loss"}
UI_TIMEOUT_MS = 180_000  # the MLflow UI's first load takes ~20 s on a busy 2-core machine


@dataclass(frozen=True)
class Lab:
    """A finished `lab2 run` on a Prefect server, with the MLflow UI on its store."""

    stdout: str
    runs_link: str  # the link `lab2 ui` printed
    mlflow_url: str
    prefect_url: str
    client: MlflowClient
    experiment_id: str
    parent_run_id: str

    def runs(self, step: str | None = None) -> list:
        runs = self.client.search_runs([self.experiment_id], max_results=1000)
        return [r for r in runs if step is None or r.data.tags.get("lab2.step") == step]


def _printed_link(out: Path, ui: subprocess.Popen, timeout: float = 240.0) -> str:
    """The link `lab2 ui` prints once its MLflow UI answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if links := re.findall(r"http://127\.0\.0\.1:\d+/#/\S+", out.read_text()):
            return links[0]
        if ui.poll() is not None:
            pytest.fail(f"lab2 ui exited with {ui.returncode}:\n{out.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"lab2 ui printed no link within {timeout:.0f} s:\n{out.read_text()[-3000:]}")


def _wait_until_answers(
    url: str, process: subprocess.Popen, log: Path, timeout: float = 240.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"{url}: server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if request("GET", url, retry_for=0, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    pytest.fail(f"no answer from {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    work = tmp_path_factory.mktemp("browser")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env |= {
        "PREFECT_HOME": str(work / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MPLBACKEND": "Agg",
    }
    prefect_port = free_port()
    prefect_url = f"http://127.0.0.1:{prefect_port}"
    prefect_log = work / "prefect.log"
    server_env = {
        **env,
        "PREFECT_UI_API_URL": f"{prefect_url}/api",
    }  # the UI's own calls, else to port 4200
    prefect = start_in_group(
        [
            str(BIN / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(prefect_port),
        ],
        server_env,
        prefect_log,
    )
    try:
        _wait_until_answers(f"{prefect_url}/api/health", prefect, prefect_log)
        done = subprocess.run(
            [str(BIN / "lab2"), "run"],
            cwd=work,
            env={**env, "PREFECT_API_URL": f"{prefect_url}/api"},
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        store = f"sqlite:///{work / 'mlflow.db'}"
        # the command lab2 run prints
        (pasted,) = [line.strip() for line in done.stdout.splitlines() if line.endswith(" ui")]
        assert pasted.endswith("lab2 ui"), done.stdout[-500:]
        ui_out = work / "ui.out"
        ui = subprocess.Popen(
            ["bash", "-c", pasted],
            cwd=work,
            env=env,
            stdout=ui_out.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            runs_link = _printed_link(ui_out, ui)
            mlflow_url = runs_link.split("/#/")[0]
            client = MlflowClient(store)
            experiment_id = client.get_experiment_by_name("lab2").experiment_id
            (parent,) = client.search_runs([experiment_id], "tags.`lab2.role` = 'pipeline'")
            yield Lab(
                done.stdout,
                runs_link,
                mlflow_url,
                prefect_url,
                client,
                experiment_id,
                parent.info.run_id,
            )
        finally:
            end_group(ui)
    finally:
        end_group(prefect)


def _open(page, url: str, wait_for: str) -> str:
    """Go to `url`, wait until `wait_for` shows, close MLflow's assistant panel; the page's text."""
    page.goto(url)
    page.get_by_text(wait_for).first.wait_for(timeout=UI_TIMEOUT_MS)
    assistant = page.get_by_text("MLflow Assistant")
    if assistant.count() and assistant.first.is_visible():
        page.get_by_role("button", name="Close").first.click()
    time.sleep(2)  # let late requests (charts, artifacts) settle
    return page.inner_text("body")


def _screenshot(page, name: str) -> None:
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / f"{name}.png"))


def _truncated(page, text: str) -> bool:
    """True if an element showing `text` is cut (wider than its box: MLflow ends it with an
    ellipsis)."""
    return page.evaluate(
        """(text) => [...document.querySelectorAll('[role=gridcell] *')]
            .some(e => e.textContent.trim() === text && e.scrollWidth > e.clientWidth + 1)""",
        text,
    )


def test_the_printed_command_opens_the_runs_grouped_by_cell_with_every_label_whole(lab, page):
    assert (
        "workflowType=machine_learning" in lab.runs_link and "viewStateShareKey=" in lab.runs_link
    )
    body = _open(page, lab.runs_link, "matching runs")
    assert "Detect issues" not in body and "Traces 0" not in body  # not MLflow's GenAI overview
    labels = {r.data.tags["lab2.group"] for r in lab.runs() if "lab2.group" in r.data.tags}
    assert len(labels) == 6 + 4  # the grid's cells, and each factorisation run a group of its own
    for label in sorted(labels):
        page.get_by_text(f"Group: {label}", exact=True).first.wait_for()
        assert not _truncated(page, f"Group: {label}"), f"MLflow cuts the label {label!r}"
    header = [h.strip() for h in page.locator("[role=columnheader]").all_inner_texts()]
    # a group row would show an averaged lr (0.10000000000000002); the label names it
    assert "lr" not in header
    shown = {
        name: page.get_by_role("columnheader", name=name, exact=True).first.bounding_box()
        for name in ("val_accuracy", "Duration")
    }
    # lab2's columns first, after the run's name and start
    assert shown["val_accuracy"]["x"] < shown["Duration"]["x"]
    _screenshot(page, "ui-runs")
    # the check itself sees a cut label
    page.add_style_tag(content="[role=gridcell]{max-width:150px !important}")
    assert _truncated(page, "Group: lr=0.001 it=1000")


def test_the_chart_view_charts_every_cell_of_the_grid(lab, page):
    _open(page, lab.runs_link, "matching runs")
    page.locator("label:has(input[value=CHART])").click()
    page.get_by_text("Model metrics").first.wait_for()
    time.sleep(4)
    assert page.locator("input[placeholder='Search metric charts']").input_value() == "accuracy"
    bars = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .map(plot => plot.querySelectorAll('.bars .point').length)""")
    assert bars == [6, 6], bars  # train and val accuracy, a bar per cell (its seeds averaged)
    _screenshot(page, "ui-charts")


def test_the_parent_describes_the_grid_and_links_to_its_best_run_and_prefect_flow_run(lab, page):
    parent = lab.client.get_run(lab.parent_run_id)
    url = (
        f"{lab.mlflow_url}/#/experiments/{lab.experiment_id}/runs/{lab.parent_run_id}"
        "?workflowType=machine_learning"
    )
    body = _open(page, url, "Best group")
    best = (
        f"lr={float(parent.data.params['best_lr']):g} "
        f"iterations={parent.data.params['best_iterations']}"
    )
    assert f"Best group: {best}" in body
    assert "mean ± sd over seeds" in body and "lab2.group" in body
    assert "Logged models (1)" in body
    page.get_by_text("Show more", exact=True).first.click()  # MLflow folds a long description
    time.sleep(1)
    _screenshot(page, "ui-description")

    flow_run_url = parent.data.tags["prefect.flow_run_url"]
    prefect_link = page.locator(f"a[href='{flow_run_url}']").first
    assert prefect_link.is_visible()
    flow_page = page.context.new_page()
    flow_page.goto(flow_run_url)
    flow_page.get_by_text(parent.data.tags["prefect.flow_run_name"]).first.wait_for(
        timeout=UI_TIMEOUT_MS
    )
    flow_page.close()

    best = parent.data.params
    best_cell = f"lr{float(best['best_lr']):g}·it{best['best_iterations']}·s{best['best_seed']}"
    (cell,) = [r for r in lab.runs("mlp") if r.info.run_name == best_cell]
    link = page.locator(f"a[href*='{cell.info.run_id}?workflowType=machine_learning']").filter(
        has_text=best_cell
    )
    with page.context.expect_page() as opened:  # MLflow opens a description's links in a new tab
        link.first.click()  # the description's link, not MLflow's own list of child runs
    run_page = opened.value
    run_page.get_by_role("heading", name=best_cell).first.wait_for(timeout=UI_TIMEOUT_MS)
    assert cell.info.run_id in run_page.url
    run_page.get_by_text(
        cell.data.tags["mlflow.note.content"].split(":")[0]
    ).first.wait_for()  # the cell's own line


def test_the_parent_runs_first_screen_at_1280_by_800_shows_the_whole_summary(lab, page):
    description = lab.client.get_run(lab.parent_run_id).data.tags["mlflow.note.content"]
    summary = description.split("\n\n")[0].splitlines()
    assert 3 <= len(summary) <= 6 and summary[1].startswith("- Settled")
    page.set_viewport_size({"width": 1280, "height": 800})
    url = (
        f"{lab.mlflow_url}/#/experiments/{lab.experiment_id}/runs/{lab.parent_run_id}"
        "?workflowType=machine_learning"
    )
    _open(page, url, "Best group")
    page.get_by_text("Show more", exact=True).first.click()  # MLflow folds at 150 px
    time.sleep(1)
    for line in summary:
        start = re.sub(r"[*`]", "", line.removeprefix("- "))[:40]
        item = page.locator("li", has_text=start).first
        box = item.bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= 800, (start, box)
        assert box["x"] + box["width"] <= 1280, (start, box)
    _screenshot(page, "ui-summary")


def test_the_winner_model_sits_under_the_lab2_experiment_with_its_metrics(lab, page):
    url = (
        f"{lab.mlflow_url}/#/experiments/{lab.experiment_id}/runs/{lab.parent_run_id}"
        "?workflowType=machine_learning"
    )
    _open(page, url, "Logged models")
    page.locator("a[href*='/models/m-']").filter(has_text="lab2-mlp").first.click()
    page.get_by_text("val_accuracy").first.wait_for(timeout=UI_TIMEOUT_MS)
    time.sleep(3)
    body = page.inner_text("body")
    assert "lab2\nModels\nlab2-mlp" in body  # breadcrumb: experiment lab2, its Models, the model
    assert "Model versions\nlab2-mlp\nv1" in body and "Source run\nlab2" in body
    assert set(re.findall(r"[a-z_]+", body)) >= LAB_METRICS
    (model,) = lab.client.search_logged_models([lab.experiment_id])
    assert model.name == "lab2-mlp" and model.source_run_id == lab.parent_run_id
    assert {m.key for m in model.metrics} == LAB_METRICS
    _screenshot(page, "ui-model")


def test_an_mlp_run_shows_its_training_and_validation_data(lab, page):
    (cell,) = [r for r in lab.runs("mlp") if r.info.run_name == "lr0.1·it100·s0"]
    url = (
        f"{lab.mlflow_url}/#/experiments/{lab.experiment_id}/runs/{cell.info.run_id}"
        "?workflowType=machine_learning"
    )
    body = _open(page, url, "Datasets")
    assert cell.data.tags["mlflow.note.content"].split(":")[0] in body  # its one-line description
    datasets = body.split("Datasets", 1)[1][:300]
    assert "iris" in datasets and "Training" in datasets
    page.get_by_text("+1", exact=True).first.click()  # the run page folds all but the first dataset
    page.get_by_text("Validation").first.wait_for()
    time.sleep(1)
    _screenshot(page, "ui-dataset")


def test_compare_of_one_cells_seeds_finds_their_learning_curves(lab, page):
    seeds = [
        r.info.run_id for r in lab.runs("mlp") if r.data.tags["lab2.group"] == "lr=0.1 it=1000"
    ]
    assert len(seeds) == 3
    query = urllib.parse.urlencode(
        {"runs": json.dumps(seeds), "experiments": json.dumps([lab.experiment_id])}
    )
    _open(page, f"{lab.mlflow_url}/#/compare-runs?{query}", "Artifacts")
    page.get_by_text("learning_curve.png").first.wait_for()
    assert "No common artifacts" not in page.inner_text("body")


def test_the_top_prefect_flow_run_holds_the_seed_table_progress_link_and_lab2_logs(lab, page):
    tags = lab.client.get_run(lab.parent_run_id).data.tags
    assert tags["prefect.flow_name"] == "lab2"  # the top flow run, not a sub-flow's
    body = _open(page, tags["prefect.flow_run_url"], "Best group:")
    assert "Units: 22 computed, 0 reused" in body
    page.get_by_text("Artifacts", exact=True).first.click()
    for key in ("seed-summary", "seed-pairs", "mlp-grid-progress", "mlflow-run"):
        page.get_by_text(key, exact=True).first.wait_for()
    time.sleep(1)
    _screenshot(page, "prefect-flow-run")


def test_the_prefect_seed_pairs_table_reads_rounded_with_its_verdicts_on_screen(lab, page):
    found = requests.post(
        f"{lab.prefect_url}/api/artifacts/filter",
        json={"artifacts": {"key": {"any_": ["seed-pairs"]}}},
        timeout=30,
    )
    (artifact,) = found.json()
    page.set_viewport_size({"width": 1600, "height": 1000})
    body = _open(page, f"{lab.prefect_url}/artifacts/artifact/{artifact['id']}", "verdict")
    assert not re.search(r"\d\.\d{5,}", body)  # accuracies to 3 decimals, p to 2 significant digits
    verdict = page.get_by_role("columnheader", name="verdict").first.bounding_box()
    assert verdict["x"] + 200 < 1600, verdict  # the verdicts show without scrolling sideways
    call = page.get_by_text("too close to call", exact=True).first
    # the call whole; its sentence is the last column
    assert call.bounding_box()["x"] + call.bounding_box()["width"] < 1600
    _screenshot(page, "prefect-seed-pairs")


def test_each_deployments_custom_run_form_shows_every_parameter_with_its_default_and_help(
    lab, page
):
    from lab2.core.params import FactorisationParams, GridParams, Lab2Params

    api = f"{lab.prefect_url}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env |= {
        "PREFECT_API_URL": api,
        "MLFLOW_TRACKING_URI": lab.mlflow_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    root = DOCS.parent
    for command in (
        ["work-pool", "create", "lab2-process", "--type", "process"],
        ["--no-prompt", "deploy", "--all"],
    ):
        done = subprocess.run(
            [str(BIN / "prefect"), *command],
            cwd=root,
            env={**env, "PWD": str(root)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    request = urllib.request.Request(
        f"{api}/deployments/filter", data=b"{}", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        deployments = {d["name"]: d["id"] for d in json.load(response)}
    for name, model in (
        ("factorisation", FactorisationParams),
        ("mlp-grid", GridParams),
        ("lab2", Lab2Params),
    ):
        page.goto(f"{lab.prefect_url}/deployments/deployment/{deployments[name]}/run")
        page.get_by_text(model.__doc__).first.wait_for(timeout=UI_TIMEOUT_MS)
        time.sleep(2)
        body = page.inner_text("body")
        missing = [
            field for field, info in model.model_fields.items() if info.description not in body
        ]
        assert missing == [], f"{name}: the form does not show {missing}"
    page.set_viewport_size({"width": 1400, "height": 2300})
    _screenshot(page, "prefect-custom-run")


def test_the_lab_report_opens_from_the_mlflow_run_page_with_its_figures(lab, page):
    # where lab2 run ends
    assert lab.stdout.rstrip().endswith(f"/{lab.parent_run_id}/artifacts/report.html")
    url = (
        f"{lab.mlflow_url}/#/experiments/{lab.experiment_id}/runs/{lab.parent_run_id}/artifacts"
        "?workflowType=machine_learning"
    )
    _open(page, url, "report.html")
    page.get_by_text("report.html", exact=True).first.click()
    shown = page.frame_locator(
        "iframe"
    ).first  # MLflow shows an HTML artifact in an iframe of its own
    shown.get_by_text("The original report's claims, checked").first.wait_for(timeout=UI_TIMEOUT_MS)
    frame = page.locator("iframe").first.element_handle().content_frame()
    frame.get_by_text("Q1_3 — the U factor of both").first.wait_for()
    widths = frame.evaluate("[...document.images].map(i => i.naturalWidth)")
    assert len(widths) == 5 and min(widths) > 0  # every figure decoded and drawn
    assert "contradicted" in frame.inner_text(
        "body"
    ) and "supported only under the report's protocol" in frame.inner_text("body")
    _screenshot(page, "ui-lab-report")


def test_the_prefect_lab_report_artifact_renders_the_claims(lab, page):
    found = requests.post(
        f"{lab.prefect_url}/api/artifacts/filter",
        json={"artifacts": {"key": {"any_": ["lab-report"]}}},
        timeout=30,
    )
    (artifact,) = found.json()
    body = _open(
        page,
        f"{lab.prefect_url}/artifacts/artifact/{artifact['id']}",
        "The original report's claims, checked",
    )
    assert "Q1_1 — the 3×3 matrix at rank 2" in body and "![" not in body
    # tables and quoted claims, rendered
    assert page.locator("table").count() >= 4 and page.locator("blockquote").count() == 9
    _screenshot(page, "prefect-lab-report")
