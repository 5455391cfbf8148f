"""Shared fixtures: a real temporary Prefect API for the session, a fresh MLflow store per test.

Two tiers: the default `pytest` runs the fast tests (no servers, no subprocesses); `pytest -m
system` runs the rest (real Prefect and MLflow servers, `lab2` processes, Dask, the browser). A
test that asks for the Prefect API starts a server, so it belongs to the system tier without
saying so.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from lab2.tasks import prefect_defaults
from tests.helpers.browser import fresh_page, launched_chromium

prefect_defaults()  # before any test module imports Prefect
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "prefect_api" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.system)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup`: a module's `xdist_group` tests stay on one worker (tests/xdist_groups.py
    says why)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from tests.xdist_groups import ModuleGroupScheduling

    return ModuleGroupScheduling(config, log)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test runs torch on one thread (restored afterwards): results do not depend on the
    machine's core count, and a loaded machine does not slow a test down by oversubscribing its
    cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real Prefect server (SQLite) for the test session, its API URL: this process's flows run
    against it, and `lab2 run` processes given it as PREFECT_API_URL skip booting a temporary API
    of their own (about 16 CPU-s each)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, made once per session (per xdist worker): MLflow's migrations
    take seconds."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = tmp_path_factory.mktemp("mlflow-empty")
    SqlAlchemyStore(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "mlruns")).engine.dispose()
    return folder / "mlflow.db"


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch, empty_mlflow_db) -> MlflowClient:
    """An empty SQLite MLflow store in a temporary working directory (artifacts beside it).

    A copy of the session's empty store, the Default experiment's artifact location moved here:
    the same tables and rows as a store MLflow creates in this folder (but for creation times).
    """
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(empty_mlflow_db) as source, sqlite3.connect(db) as copy:
        source.backup(copy)
        copy.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (str(tmp_path / "mlruns" / "0"),),
        )
    source.close()
    copy.close()
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return MlflowClient(uri)


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    """A page in a fresh browser profile, the module's browser shared."""
    with fresh_page(browser) as opened:
        yield opened
