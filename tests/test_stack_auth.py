"""The stack beyond 127.0.0.1 asks for credentials: MLflow's basic-auth app and Prefect's API auth
string.

127.0.0.2 stands in for an address other hosts could reach (only loopback addresses are used
here). Credentials come from the environment; the test sees unauthenticated and wrong-password
requests refused by both servers, a deployed run land with the right ones, and the password
written nowhere.
"""

from __future__ import annotations

import secrets

import pytest

from lab2.cli import stack, stack_services
from lab2.cli.main import main
from lab2.cli.processes import free_port
from tests.helpers.http import request
from tests.helpers.stack_servers import (
    PROJECT,
    mlflow_runs,
    params_of,
    prefect_json,
    run_deployment,
    running_stack,
    tags_of,
)

# One worker runs the whole module (pytest -n N --dist loadgroup): its tests share module-scoped
# servers.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("stack-auth")]

HOST = "127.0.0.2"
USER, PASSWORD = "lab2-admin", secrets.token_urlsafe(16)
GRID = {"lrs": [0.1], "iterations": [5], "seeds": [0, 1], "experiment": "with-auth"}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """The stack on 127.0.0.2 with credentials exported as a user would."""
    pytest.importorskip(
        "flask_wtf", reason="the auth extra (MLflow's basic-auth app) is not installed"
    )
    env = pytest.MonkeyPatch()
    for name, value in {
        "MLFLOW_TRACKING_USERNAME": USER,
        "MLFLOW_TRACKING_PASSWORD": PASSWORD,
        "PREFECT_API_AUTH_STRING": f"{USER}:{PASSWORD}",
    }.items():
        env.setenv(name, value)
    for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        env.delenv(name, raising=False)
    config = stack_services.StackConfig(
        tmp_path_factory.mktemp("stack"), free_port(HOST), free_port(HOST), timeout=180.0, host=HOST
    )
    try:
        with running_stack(config):
            yield config
    finally:
        env.undo()


def test_beyond_loopback_up_refuses_to_start_without_credentials(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert main(["stack", "up", "--host", HOST, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--host 127.0.0.2" in err and "MLFLOW_TRACKING_PASSWORD, PREFECT_API_AUTH_STRING" in err
    assert not (tmp_path / "stack.json").exists()


@pytest.mark.parametrize(
    "auth",
    [None, (USER, "wrong-password"), ("intruder", PASSWORD)],
    ids=["none", "wrong password", "unknown user"],
)
def test_both_servers_refuse_requests_without_the_right_credentials(config, auth):
    mlflow = request(
        "GET",
        f"{config.mlflow_url}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        auth=auth,
    )
    prefect = request("POST", f"{config.prefect_api_url}/flows/filter", json={}, auth=auth)
    assert (mlflow.status_code, prefect.status_code) == (401, 401)
    right = (USER, PASSWORD)
    assert request(
        "GET",
        f"{config.mlflow_url}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        auth=right,
    ).ok
    assert request("POST", f"{config.prefect_api_url}/flows/filter", json={}, auth=right).ok


def test_a_deployed_run_lands_with_the_credentials_and_writes_them_nowhere(config, capsys):
    done = stack.deploy(config, PROJECT)
    assert done.returncode == 0, done.stdout + done.stderr
    right = (USER, PASSWORD)
    api = config.prefect_api_url
    (deployment,) = [
        d
        for d in prefect_json(api, "deployments/filter", {}, auth=right)
        if d["name"] == "mlp-grid"
    ]
    run = run_deployment(api, deployment["id"], {"params": GRID}, auth=right)
    assert run["state_type"] == "COMPLETED", run["state"]

    runs = mlflow_runs(config.mlflow_url, GRID["experiment"], auth=right)
    cells = [r for r in runs if tags_of(r).get("lab2.step") == "mlp"]
    assert len(cells) == 2 and all(r["info"]["status"] == "FINISHED" for r in runs)
    assert deployment["job_variables"]["env"] == {
        "MLFLOW_TRACKING_URI": config.mlflow_url,  # no credentials in it
        "PREFECT_TASKS_DEFAULT_NO_CACHE": "true",
    }

    assert main(["stack", "status", "--data-dir", str(config.data_dir)]) == 0
    shown = capsys.readouterr().out
    assert "auth: on" in shown
    values = [v for r in runs for v in [*params_of(r).values(), *tags_of(r).values()]]
    written = [
        p.read_text(errors="replace") for p in [config.state_file, *config.log_dir.iterdir()]
    ]
    assert all(PASSWORD not in text for text in [shown, *values, *written])
