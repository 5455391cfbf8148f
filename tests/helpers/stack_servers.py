"""The lab2 stack for the system tier: up for a block and down after, with no process left; lab2
runs pointed at it, its deployments run, and its servers' REST APIs read."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from lab2.cli import processes, stack, stack_services
from tests.helpers.checkout import ROOT
from tests.helpers.http import http_json
from tests.helpers.processes import descendants, left_behind, still_alive

PROJECT = ROOT  # prefect.yaml and automations.yaml live at the checkout's top


BIN = Path(sys.executable).parent


@contextmanager
def running_stack(config: stack_services.StackConfig) -> Iterator[stack_services.StackConfig]:
    """The stack up for the block; afterwards down, with no process group or descendant left."""
    before = descendants()
    try:
        stack.up(config)
        yield config
    finally:
        started = stack_services.read_services(config.data_dir)
        family = descendants() - before  # servers, worker, their children, flow runs still running
        stack.down(config)
        assert [
            name for name, entry in started.items() if processes.group_alive(entry["pid"])
        ] == []
        assert left_behind(before) == {} and still_alive(family) == set()


def lab2_command(*options: str) -> list[str]:
    return [str(BIN / "lab2"), "run", *options]


def run_env(client_env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """This process's environment pointed at a stack (the stack's URLs win)."""
    return {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MPLBACKEND": "Agg",
        **client_env,
        **extra,
    }


def prefect_json(api_url: str, endpoint: str, body: dict | None = None, **options) -> dict | list:
    """One call of Prefect's REST API: POST with a body, else GET."""
    return http_json(
        "POST" if body is not None else "GET", f"{api_url}/{endpoint}", body, **options
    )


TERMINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


def run_deployment(
    api_url: str,
    deployment_id: str,
    parameters: dict,
    timeout: float = 300.0,
    job_variables: dict | None = None,
    **options,
) -> dict:
    """A flow run of the deployment (with its own `job_variables`, e.g. an environment), created and
    followed until it ends (or `timeout` s pass); the run's last state."""
    create = f"deployments/{deployment_id}/create_flow_run"
    body = {"parameters": parameters, **({"job_variables": job_variables} if job_variables else {})}
    run = http_json("POST", f"{api_url}/{create}", body, idempotent=False, **options)
    deadline = time.monotonic() + timeout
    while run["state_type"] not in TERMINAL and time.monotonic() < deadline:
        time.sleep(1)
        run = prefect_json(api_url, f"flow_runs/{run['id']}", **options)
    return run


def mlflow_json(
    base: str,
    endpoint: str,
    body: dict | None = None,
    auth: tuple[str, str] | None = None,
    **query: str,
) -> dict:
    """One call of MLflow's REST API (POST with a body, else GET with `query`), retried while the
    server is busy."""
    url = f"{base}/api/2.0/mlflow/{endpoint}"
    if body is not None:
        return http_json("POST", url, body, auth=auth)
    return http_json("GET", url, params=query, auth=auth)


def mlflow_runs(base: str, experiment: str, auth: tuple[str, str] | None = None) -> list[dict]:
    """Every run of `experiment` over MLflow's REST API (all pages)."""
    found = mlflow_json(base, "experiments/get-by-name", auth=auth, experiment_name=experiment)[
        "experiment"
    ]
    runs, token = [], None
    while True:
        body = {
            "experiment_ids": [found["experiment_id"]],
            "max_results": 1000,
            **({"page_token": token} if token else {}),
        }
        page = mlflow_json(base, "runs/search", body, auth=auth)
        runs += page.get("runs", [])
        token = page.get("next_page_token")
        if not token:
            return runs


def tags_of(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def params_of(run: dict) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run["data"].get("params", [])}


def metrics_of(run: dict) -> dict[str, float]:
    return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
