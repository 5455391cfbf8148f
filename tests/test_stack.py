"""The stack for real: Prefect server, process worker and MLflow server on free loopback ports.

Deploys prefect.yaml, runs the `mlp-grid` deployment through the worker and reads the result back
over HTTP from both servers. Every process the stack starts is gone when the module ends.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_iris

from lab2.cli import processes, stack, stack_services
from lab2.cli.main import main
from lab2.cli.processes import free_port
from tests.helpers.browser import fresh_page, launched_chromium
from tests.helpers.http import http_json
from tests.helpers.processes import descendants, left_behind
from tests.helpers.stack_servers import (
    PROJECT,
    mlflow_json,
    prefect_json,
    run_deployment,
    running_stack,
)

# One worker runs the whole module (pytest -n N --dist loadgroup): its tests share module-scoped
# servers.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("stack")]

GRID = {"lrs": [0.1, 0.01], "iterations": [5], "seeds": [0, 1], "experiment": "stack-test"}
LAB_GRID = {
    "lrs": [0.1, 0.01, 0.001],
    "iterations": [100, 1000],
    "seeds": [0, 1],
    "gd_epochs": 200,
    "experiment": "stack-report",
}


def _prefect(
    config: stack_services.StackConfig, endpoint: str, body: dict | None = None
) -> dict | list:
    """One call of the stack's Prefect API, asked again while the server is busy."""
    return prefect_json(config.prefect_api_url, endpoint, body)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> stack_services.StackConfig:
    """A running stack for this module, off the default ports; on teardown, down and no process
    group left."""
    config = stack_services.StackConfig(
        tmp_path_factory.mktemp("stack"), free_port(), free_port(), timeout=180.0
    )
    with running_stack(config):
        yield config


@pytest.fixture(scope="module")
def deployments(config) -> dict[str, dict]:
    """prefect.yaml deployed against the stack, unattended; deployments by name."""
    done = stack.deploy(config, PROJECT)
    assert done.returncode == 0, done.stdout + done.stderr
    return {d["name"]: d for d in _prefect(config, "deployments/filter", {})}


@pytest.fixture(scope="module")
def grid_run(config, deployments) -> dict:
    """The `mlp-grid` deployment triggered with a small grid, run by the worker to the end."""
    run = run_deployment(config.prefect_api_url, deployments["mlp-grid"]["id"], {"params": GRID})
    assert run["state_type"] == "COMPLETED", run["state"]
    return run


@pytest.fixture
def page():
    """A page in a browser of its own, closed with it after the test: other tests here count the
    processes left."""
    with launched_chromium() as chromium, fresh_page(chromium) as opened:
        yield opened


def _mlflow(
    config: stack_services.StackConfig, endpoint: str, body: dict | None = None, **query: str
) -> dict:
    return mlflow_json(config.mlflow_url, endpoint, body, **query)


def _runs(config: stack_services.StackConfig) -> list[dict]:
    experiment = _mlflow(config, "experiments/get-by-name", experiment_name=GRID["experiment"])[
        "experiment"
    ]
    return _mlflow(
        config,
        "runs/search",
        {"experiment_ids": [experiment["experiment_id"]], "max_results": 1000},
    )["runs"]


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def test_a_second_up_starts_no_duplicates_and_status_reports_all(config, capsys):
    before = {name: entry["pid"] for name, entry in stack.status(config).items()}
    again = stack.up(config)
    assert {name: entry["pid"] for name, entry in again.items()} == before
    assert set(before) == set(stack_services.SERVICES)
    report = stack.status(config)
    assert all(entry["running"] and entry["healthy"] for entry in report.values())
    # ports read from its stack.json
    assert main(["stack", "status", "--data-dir", str(config.data_dir)]) == 0
    out = capsys.readouterr().out
    assert config.prefect_ui_url in out and config.mlflow_url in out


def test_the_ui_calls_the_api_on_the_stacks_own_port(config):
    assert (
        http_json("GET", f"{config.prefect_ui_url}/ui-settings")["api_url"]
        == config.prefect_api_url
    )


def test_status_and_deploy_find_the_stack_from_lab2_stack_dir_and_honour_exported_urls(
    config, monkeypatch, tmp_path, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAB2_STACK_DIR", str(config.data_dir))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["stack", "status"]) == 0
    assert f"export PREFECT_API_URL={config.prefect_api_url}" in capsys.readouterr().out
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("PREFECT_API_URL", f"{nowhere}/api")
    assert main(["stack", "status"]) == 3
    assert main(["stack", "deploy"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        (
            f"PREFECT_API_URL={nowhere}/api: no server answers at {nowhere}/api/health; start the "
            "stack (lab2 stack up) or export the right PREFECT_API_URL"
        ),
        (
            f"lab2 stack deploy: PREFECT_API_URL={nowhere}/api: no server answers at "
            f"{nowhere}/api/health; start the stack (lab2 stack up) or export the right "
            "PREFECT_API_URL"
        ),
    ]


def test_status_and_deploy_of_a_stack_not_running_say_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    port = free_port()
    assert main(["stack", "status", "--data-dir", str(tmp_path)]) == 3
    assert (
        main(
            [
                "stack",
                "deploy",
                "--data-dir",
                str(tmp_path),
                "--prefect-port",
                str(port),
                "--mlflow-port",
                str(free_port()),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and "Traceback" not in err
    assert (
        f"no stack recorded in {tmp_path}" in err
        and f"no server answers at http://127.0.0.1:{port}/api/health" in err
    )


def test_the_nightly_deployment_is_scheduled_with_concurrency_one(config, deployments):
    nightly = deployments["lab2"]
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 2 * * *"]
    assert not nightly["schedules"][0]["parameters"]  # the flow's own defaults: the lab's grid
    assert nightly["parameter_openapi_schema"]["definitions"]["Lab2Params"]["properties"]["lrs"][
        "default"
    ] == [0.1, 0.01, 0.001]
    assert nightly["global_concurrency_limit"]["limit"] == 1
    assert {d["name"]: d["work_pool_name"] for d in deployments.values()} == {
        n: "lab2-process" for n in ("lab2", "factorisation", "mlp-grid")
    }
    assert all(
        d["job_variables"]["env"]["MLFLOW_TRACKING_URI"] == config.mlflow_url
        for d in deployments.values()
    )
    query = {
        "deployments": {"id": {"any_": [nightly["id"]]}},
        "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
    }
    deadline = time.monotonic() + 120
    while (
        not (upcoming := _prefect(config, "flow_runs/filter", query))
        and time.monotonic() < deadline
    ):
        time.sleep(1)
    assert upcoming and all(run["expected_start_time"].endswith("T02:00:00Z") for run in upcoming)


def test_a_deployment_run_logs_every_cell_with_metrics_and_figures(config, grid_run):
    runs = _runs(config)
    cells = [r for r in runs if _tags(r).get("lab2.step") == "mlp"]
    params = [{p["key"]: p["value"] for p in r["data"]["params"]} for r in cells]
    assert sorted((float(p["lr"]), int(p["iterations"]), int(p["seed"])) for p in params) == [
        (lr, 5, seed) for lr in (0.01, 0.1) for seed in (0, 1)
    ]
    for run in cells:
        assert {"train_accuracy", "val_accuracy", "train_loss", "val_loss"} <= {
            m["key"] for m in run["data"]["metrics"]
        }
        listed = _mlflow(config, "artifacts/list", run_id=run["info"]["run_id"])
        assert [f["path"] for f in listed["files"]] == ["learning_curve.png"]


def test_prefect_and_mlflow_runs_link_both_ways(config, grid_run):
    (parent,) = [r for r in _runs(config) if _tags(r).get("lab2.role") == "pipeline"]
    tags = _tags(parent)
    # MLflow → Prefect: the tags name a flow run that exists, of the deployment, with its UI page.
    assert (
        tags["prefect.flow_run_id"] == grid_run["id"]
        and tags["prefect.deployment_name"] == "mlp-grid"
    )
    assert (
        tags["prefect.flow_run_url"]
        == f"{config.prefect_ui_url}/flow-runs/flow-run/{grid_run['id']}"
    )
    assert (
        _prefect(config, f"flow_runs/{tags['prefect.flow_run_id']}")["name"]
        == tags["prefect.flow_run_name"]
    )
    assert {
        "lab2.env.torch",
        "lab2.env.prefect",
        "lab2.env.mlflow",
        "lab2.env.torch_threads",
        "mlflow.source.git.commit",
    } <= set(tags)
    # Prefect → MLflow: the flow run's link artifact opens the parent run.
    query = {
        "artifacts": {"flow_run_id": {"any_": [grid_run["id"]]}, "key": {"any_": ["mlflow-run"]}}
    }
    (artifact,) = _prefect(config, "artifacts/filter", query)
    url = re.fullmatch(r"\[.*\]\((.+)\)", artifact["data"]).group(1)
    assert url.startswith(f"{config.mlflow_url}/#/experiments/")
    route, query = url.split("?")
    # MLflow 3.17 opens on its GenAI overview otherwise
    assert query == "workflowType=machine_learning"
    experiment_id, run_id = route.split("/#/experiments/")[1].split("/runs/")
    linked = _mlflow(config, "runs/get", run_id=run_id)["run"]
    assert (
        linked["info"]["run_id"] == parent["info"]["run_id"]
        and linked["info"]["experiment_id"] == experiment_id
    )


def test_lab2_ui_links_the_running_stacks_mlflow_server_in_lab2s_view(
    config, grid_run, monkeypatch, tmp_path, capsys
):
    monkeypatch.chdir(tmp_path)  # no `lab2 run` recorded here
    monkeypatch.setenv("LAB2_STACK_DIR", str(config.data_dir))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["ui", "--experiment", GRID["experiment"]]) == 0
    experiment = _mlflow(config, "experiments/get-by-name", experiment_name=GRID["experiment"])[
        "experiment"
    ]
    link = (
        f"{config.mlflow_url}/#/experiments/{experiment['experiment_id']}/runs"
        "?workflowType=machine_learning&viewStateShareKey="
    )
    assert link in capsys.readouterr().out


def test_the_lab_report_of_a_deployment_run_is_written_again_by_lab2_report_and_opens_from_prefect(
    config, deployments, tmp_path, page
):
    run = run_deployment(
        config.prefect_api_url, deployments["lab2"]["id"], {"params": LAB_GRID}, timeout=900
    )
    assert run["state_type"] == "COMPLETED", run["state"]
    store = MlflowClient(config.mlflow_url)
    experiment_id = store.get_experiment_by_name(LAB_GRID["experiment"]).experiment_id
    (parent,) = store.search_runs([experiment_id], "tags.`lab2.role` = 'pipeline'")
    carried = tmp_path / "carried"
    carried.mkdir()
    carried = Path(
        store.download_artifacts(parent.info.run_id, "report.md", str(carried))
    ).read_text()
    assert (
        "[The run in "
        f"MLflow]({config.mlflow_url}/#/experiments/{experiment_id}/runs/{parent.info.run_id}"
    ) in carried

    # `lab2 report --run` on the stack's MLflow server, in a process of its own: the report the run
    # carries.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env |= {
        "MLFLOW_TRACKING_URI": config.mlflow_url,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
    }
    written = subprocess.run(
        [processes.console_script("lab2"), "report", "--run", parent.info.run_id],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert written.returncode == 0, written.stderr[-3000:]
    assert (
        f"{tmp_path / 'report.md'}\n" in written.stdout
        and (tmp_path / "report.md").read_text() == carried
    )

    # The flow run's lab-report artifact links report.html in the MLflow UI, which shows it with its
    # figures.
    query = {"artifacts": {"flow_run_id": {"any_": [run["id"]]}, "key": {"any_": ["lab-report"]}}}
    (artifact,) = _prefect(config, "artifacts/filter", query)
    link = (
        f"{config.mlflow_url}/#/experiments/{experiment_id}/runs/{parent.info.run_id}"
        "/artifactPath/report.html?workflowType=machine_learning"
    )
    assert artifact["data"].startswith(
        f"**[The whole report, its figures embedded: report.html in the MLflow UI]({link})**"
    )
    page.goto(f"{config.prefect_ui_url}/artifacts/artifact/{artifact['id']}")
    anchor = page.get_by_role("link", name=re.compile("The whole report, its figures embedded"))
    anchor.wait_for(timeout=180_000)
    assert anchor.get_attribute("href") == link and anchor.get_attribute("target") == "_blank"
    with page.expect_popup() as opened:  # Prefect opens a markdown link in a new tab
        anchor.click()
    shown = opened.value
    report = shown.frame_locator(
        "iframe"
    ).first  # MLflow shows an HTML artifact in an iframe of its own
    report.get_by_text("The original report's claims, checked").first.wait_for(timeout=180_000)
    frame = shown.locator("iframe").first.element_handle().content_frame()
    assert (
        frame.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        and frame.evaluate("document.images.length") == 5
    )


@contextmanager
def webhook_receiver():
    """An HTTP receiver on a free loopback port that keeps the JSON body of every POST; stopped on
    exit."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/lab2-alert", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_night_whose_numbers_changed_alerts_the_webhook_once_through_prefects_automation(
    config, deployments, tmp_path, monkeypatch, page
):
    csv = tmp_path / "iris.csv"
    frame = load_iris(as_frame=True).frame
    frame.to_csv(csv, index=False)
    params = {
        "dataset": str(csv),
        "lrs": [0.1],
        "iterations": [50],
        "seeds": [0, 1, 2],
        "gd_epochs": 50,
        "experiment": "stack-watch",
        "report": False,
    }
    with webhook_receiver() as (url, received):
        monkeypatch.chdir(PROJECT)  # prefect.yaml and automations.yaml
        ports = [
            "--data-dir",
            str(config.data_dir),
            "--prefect-port",
            str(config.prefect_port),
            "--mlflow-port",
            str(config.mlflow_port),
        ]
        assert main(["stack", "deploy", *ports, "--alert-webhook", url]) == 0
        runs = [
            run_deployment(
                config.prefect_api_url, deployments["lab2"]["id"], {"params": params}, timeout=600
            )
            for _ in range(2)
        ]
        frame.loc[100:149, "petal length (cm)"] -= 1.5  # the third species' petals: the data moved
        frame.to_csv(csv, index=False)
        runs.append(
            run_deployment(
                config.prefect_api_url, deployments["lab2"]["id"], {"params": params}, timeout=600
            )
        )
        # A torch upgrade, simulated: a torch-2.99.0.dist-info first on the flow run's path makes
        # importlib.metadata report that version while the same torch computes. The environment is
        # part of each unit's identity: every unit is computed again, and found identical bit for
        # bit.
        upgraded = tmp_path / "upgraded"
        (upgraded / "torch-2.99.0.dist-info").mkdir(parents=True)
        (upgraded / "torch-2.99.0.dist-info" / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: torch\nVersion: 2.99.0\n"
        )
        env = {"MLFLOW_TRACKING_URI": config.mlflow_url, "PYTHONPATH": str(upgraded)}
        runs.append(
            run_deployment(
                config.prefect_api_url,
                deployments["lab2"]["id"],
                {"params": params},
                timeout=600,
                job_variables={"env": env},
            )
        )
        assert [r["state_type"] for r in runs] == ["COMPLETED"] * 4
        # The runs list shows each night's verdict at a glance.
        assert [r["state_name"] for r in runs] == ["Completed", "Unchanged", "Changed", "Identical"]
        deadline = time.monotonic() + 120
        while not received and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(5)  # a second call would come now
    (alert,) = received  # the changed night's, and only it
    assert (
        alert["verdict"] == "changed"
        and "rows changed" in alert["cause"]
        and alert["link"].startswith(config.mlflow_url)
    )
    events = _prefect(
        config,
        "events/filter",
        {"filter": {"event": {"name": ["lab2.watch.changed"]}}, "limit": 10},
    )["events"]
    assert len(events) == 1 and events[0]["payload"]["run_id"] == alert["run_id"]
    store = MlflowClient(config.mlflow_url)
    parent = store.get_run(alert["run_id"])
    assert (
        parent.data.tags["lab2.watch"] == "changed"
        and parent.data.tags["prefect.flow_run_id"] == runs[2]["id"]
    )

    (unchanged,) = store.search_runs(
        [parent.info.experiment_id], f"tags.`prefect.flow_run_id` = '{runs[1]['id']}'"
    )
    # the cheap night: nothing computed
    assert unchanged.data.tags["lab2.rerun_of"] == unchanged.data.tags["lab2.watch.predecessor"]
    upgraded_run = store.get_run(
        store.search_runs(
            [parent.info.experiment_id], f"tags.`prefect.flow_run_id` = '{runs[3]['id']}'"
        )[0].info.run_id
    )
    assert upgraded_run.data.tags["lab2.watch"] == "identical"
    assert (
        upgraded_run.data.tags["lab2.watch.cause"]
        == f"environment: torch {version('torch')} → 2.99.0"
    )
    units = pd.read_csv(
        store.download_artifacts(upgraded_run.info.run_id, "units/mlp_grid.csv", str(tmp_path))
    )
    assert not units["reused"].any()  # computed again under the new environment

    # In the Prefect UI: the runs list shows each night's named state, and the artifact renders the
    # verdict and cause.
    page.goto(f"{config.prefect_ui_url}/runs")
    for name in ("Unchanged", "Changed", "Identical"):
        page.get_by_text(name, exact=True).first.wait_for(timeout=180_000)
    query = {
        "artifacts": {"flow_run_id": {"any_": [runs[2]["id"]]}, "key": {"any_": ["since-last-run"]}}
    }
    (artifact,) = _prefect(config, "artifacts/filter", query)
    page.goto(f"{config.prefect_ui_url}/artifacts/artifact/{artifact['id']}")
    page.get_by_text("Since the last run: changed").first.wait_for(timeout=180_000)
    assert "50 of 150 rows changed" in page.inner_text("body")
    page.screenshot(path=str(PROJECT / "docs" / "prefect-since-last-run.png"))


def _edited_copy_of_the_sources(folder: Path, file: str, old: str, new: str) -> Path:
    """lab2's sources copied into `folder`, `old` replaced by `new` in `file`; the directory that,
    first on a flow run's PYTHONPATH, makes it import the copy (a package `lab2` whose parts link
    to the copied folders)."""
    for part in ("lab2core", "tasks", "flows", "cli"):
        shutil.copytree(PROJECT / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    edited = folder / file
    assert edited.read_text().count(old) == 1
    edited.write_text(edited.read_text().replace(old, new))
    package = folder / "site" / "lab2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, part in {
        "core": "lab2core",
        "tasks": "tasks",
        "flows": "flows",
        "cli": "cli",
    }.items():
        (package / name).symlink_to(folder / part, target_is_directory=True)
    return folder / "site"


def test_a_night_after_an_edit_to_the_training_recipe_names_the_file(config, deployments, tmp_path):
    params = {
        "lrs": [0.1],
        "iterations": [50],
        "seeds": [0, 1, 2],
        "gd_epochs": 50,
        "experiment": "stack-recipe",
        "report": False,
    }
    before = run_deployment(
        config.prefect_api_url, deployments["lab2"]["id"], {"params": params}, timeout=600
    )
    site = _edited_copy_of_the_sources(
        tmp_path / "sources", "lab2core/mlp.py", "w1 = torch.rand(", "w1 = 0.5 * torch.rand("
    )
    env = {"MLFLOW_TRACKING_URI": config.mlflow_url, "PYTHONPATH": str(site)}
    after = run_deployment(
        config.prefect_api_url,
        deployments["lab2"]["id"],
        {"params": params},
        timeout=600,
        job_variables={"env": env},
    )
    assert (before["state_name"], after["state_type"]) == ("Completed", "COMPLETED")
    store = MlflowClient(config.mlflow_url)
    experiment_id = store.get_experiment_by_name("stack-recipe").experiment_id
    (parent,) = store.search_runs([experiment_id], f"tags.`prefect.flow_run_id` = '{after['id']}'")
    assert parent.data.tags["lab2.watch.cause"] == "recipe code: lab2.core.mlp"
    assert (
        after["state_name"]
        == {"changed": "Changed", "within-noise": "Within noise"}[parent.data.tags["lab2.watch"]]
    )
    units = pd.read_csv(
        store.download_artifacts(parent.info.run_id, "units/mlp_grid.csv", str(tmp_path))
    )
    assert not units["reused"].any()  # the recipe changed: every cell computed again with it


def test_up_refuses_a_taken_port_and_leaves_nothing_running(tmp_path):
    before = descendants()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = stack_services.StackConfig(
            tmp_path, prefect_port=taken.getsockname()[1], mlflow_port=free_port()
        )
        with pytest.raises(stack_services.StackError, match="is taken"):
            stack.up(config)
    assert stack.status(config) == {} and left_behind(before) == {}


def test_a_service_that_dies_at_start_up_is_reported_with_its_logs_last_line(tmp_path):
    from lab2.cli.stack_services import Service, start, wait_ready

    config = stack_services.StackConfig(tmp_path, timeout=60.0)
    config.log_dir.mkdir(parents=True)
    dies = (
        "import sys; print('Traceback (most recent call last):\\n  ...'); sys.exit('ValueError: "
        "password too short')"
    )
    service = Service("mlflow-server", [sys.executable, "-c", dies], {}, 0, lambda: False)
    with pytest.raises(stack_services.StackError) as refused:
        wait_ready(service, start(service, config)["pid"], config)
    assert str(refused.value) == (
        "mlflow-server exited during start-up: ValueError: password too short; see "
        f"{config.log_dir / 'mlflow-server.log'}"
    )


def test_a_cancelled_deployment_run_ends_cancelled_its_mlflow_runs_killed_no_process_left(
    config, deployments
):
    before = descendants()  # the stack's processes among them
    long_grid = {
        "lrs": [0.1, 0.05],
        "iterations": [3_000_000],
        "seeds": [0],
        "cell_figures": False,
        "experiment": "stack-cancel",
    }
    create = f"{config.prefect_api_url}/deployments/{deployments['mlp-grid']['id']}/create_flow_run"
    run = http_json("POST", create, {"parameters": {"params": long_grid}}, idempotent=False)

    def parent_runs() -> list[dict]:
        found = mlflow_json(
            config.mlflow_url,
            "experiments/search",
            {"filter": "name = 'stack-cancel'", "max_results": 1},
        )
        if not found.get("experiments"):
            return []
        return _mlflow(
            config, "runs/search", {"experiment_ids": [found["experiments"][0]["experiment_id"]]}
        ).get("runs", [])

    deadline = time.monotonic() + 180
    while (
        not parent_runs() and time.monotonic() < deadline
    ):  # the flow has opened its MLflow run, and trains
        time.sleep(1)
    time.sleep(3)
    env = {**os.environ, "PREFECT_API_URL": config.prefect_api_url}
    cancel = subprocess.run(
        [processes.console_script("prefect"), "flow-run", "cancel", run["id"]],
        env=env,
        capture_output=True,
        text=True,
    )
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    asked = time.monotonic()
    while (
        state := _prefect(config, f"flow_runs/{run['id']}")["state_type"]
    ) != "CANCELLED" and time.monotonic() - asked < 120:
        time.sleep(0.5)
    took = time.monotonic() - asked
    assert state == "CANCELLED", state
    print(f"\ncancelled in {took:.1f} s")
    # the grid's parent; no cell had finished
    assert [r["info"]["status"] for r in parent_runs()] == ["KILLED"]
    assert left_behind(before, timeout=20) == {}  # the flow run's process and its shards' workers


def test_lab2_run_without_a_prefect_api_url_runs_its_flows_on_the_stack_that_is_up(
    config, tmp_path
):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "PREFECT_API", "PREFECT_UI"))
    }
    env |= {"LAB2_STACK_DIR": str(config.data_dir), "PREFECT_HOME": str(tmp_path / "prefect-home")}
    args = [
        "--lrs",
        "0.5",
        "--iterations",
        "5",
        "--seeds",
        "0",
        "--gd-epochs",
        "5",
        "--no-cell-figures",
        "--experiment",
        "stack-default",
    ]
    done = subprocess.run(
        [processes.console_script("lab2"), "run", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        f"lab2: flow runs on the Prefect server of the lab2 stack in {config.data_dir}\n"
        in done.stdout
    )
    # MLflow stays the local store: only Prefect's API is the stack's
    (parent,) = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(
        ["1"], "tags.`lab2.role` = 'pipeline'"
    )
    flow_run_id = parent.data.tags["prefect.flow_run_id"]
    assert (
        parent.data.tags["prefect.flow_run_url"]
        == f"{config.prefect_ui_url}/flow-runs/flow-run/{flow_run_id}"
    )
    assert _prefect(config, f"flow_runs/{flow_run_id}")["state_type"] == "COMPLETED"
