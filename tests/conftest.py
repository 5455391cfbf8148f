"""Shared fixtures: a real temporary Prefect API for the session, a fresh MLflow store per test.

Two tiers: the default `pytest` runs the fast tests (no servers, no subprocesses); `pytest -m system`
runs the rest (real Prefect and MLflow servers, `lab2` processes, Dask, the browser). A test that asks
for the Prefect API starts a server, so it belongs to the system tier without saying so.
"""

from __future__ import annotations

import os

import pytest
import torch
from mlflow.tracking import MlflowClient

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "prefect_api" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.system)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test runs torch on one thread (restored afterwards): results do not depend on the machine's
    core count, and a loaded machine does not slow a test down by oversubscribing its cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def prefect_api():
    """Flows run against a temporary Prefect server (SQLite) that lives for the test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> MlflowClient:
    """An empty SQLite MLflow store in a temporary working directory (artifacts beside it)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return MlflowClient(uri)


def all_runs(client: MlflowClient, experiment: str = "lab2") -> list:
    """Every run of `experiment` (none if the experiment does not exist)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], max_results=5000)
