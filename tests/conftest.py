"""Shared fixtures: a real temporary Prefect API for the session, a fresh MLflow store per test."""

from __future__ import annotations

import os

import pytest
from mlflow.tracking import MlflowClient

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


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
