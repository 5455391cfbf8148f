"""The registered winner served by MLflow's own server (`mlflow models serve`): raw Iris rows with
their column names in, species names out, and its validation accuracy the one lab2 logged."""

import os
import sys
import time
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from lab2.cli import processes
from lab2.core.data import load_dataset
from lab2.core.mlp import prepare_mlp_data
from lab2.tasks.layout import CELL_RUN_ID_TAG, REGISTERED_MODEL
from tests.helpers.lab2_runs import lab2_env, lab2_run
from tests.helpers.processes import end_group, start_in_group

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
PATH = f"{Path(sys.executable).parent}:{os.environ['PATH']}"


def wait_until_serving(url: str, server, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow models serve ended before it served"
        try:
            if requests.get(f"{url}/ping", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"mlflow models serve did not answer on {url} within {timeout:.0f} s")


@pytest.mark.system
def test_mlflow_serves_the_registered_winner_on_raw_rows(tmp_path, prefect_api):
    lab2_run(tmp_path, prefect_api, "--experiment", "lab")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (version,) = MlflowClient(store).search_model_versions(f"name='{REGISTERED_MODEL}'")
    cell = MlflowClient(store).get_run(version.tags[CELL_RUN_ID_TAG])

    port = processes.free_port()
    server = start_in_group(
        [
            MLFLOW,
            "models",
            "serve",
            "-m",
            f"models:/{REGISTERED_MODEL}/{version.version}",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        # the server runs uvicorn from PATH: the environment's own, as in an activated venv
        lab2_env(tmp_path / "prefect-home", MLFLOW_TRACKING_URI=store, PATH=PATH),
        tmp_path / "serve.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, server)
        iris = load_dataset("iris")
        split = prepare_mlp_data(iris, int(cell.data.params["split_seed"]))
        rows = iris.features[split.val_index].tolist()
        answer = requests.post(
            f"{url}/invocations",
            json={"dataframe_split": {"columns": iris.columns(), "data": rows}},
            timeout=60,
        )
        assert answer.ok, answer.text
        predictions = answer.json()["predictions"]
        truth = [iris.class_names[k] for k in split.y_val.tolist()]
        hits = [p["species"] == t for p, t in zip(predictions, truth, strict=True)]
        assert sum(hits) / len(hits) == cell.data.metrics["val_accuracy"]
        assert set(predictions[0]) == {"species", *(f"probability_{c}" for c in iris.class_names)}
    finally:
        end_group(server)
    assert server.poll() is not None
