"""Property: any valid small grid yields one FINISHED run per cell, each finite or flagged as
diverged."""

import math
import uuid
from itertools import product

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab2.core.params import GridParams
from lab2.flows.mlp_grid import mlp_grid
from tests.helpers.mlflow_runs import all_runs

pytestmark = pytest.mark.usefixtures("prefect_api")

METRICS = ("train_accuracy", "val_accuracy", "train_loss", "val_loss")


def axis(values):
    return st.lists(values, min_size=1, max_size=3, unique=True).map(tuple)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lrs=axis(st.floats(min_value=1e-3, max_value=50.0, allow_nan=False)),
    iterations=axis(st.integers(min_value=1, max_value=40)),
    seeds=axis(st.integers(min_value=0, max_value=2**31)),
)
def test_random_valid_grids_give_one_run_per_cell_finite_or_flagged(
    mlflow_store, lrs, iterations, seeds
):
    # one store per test, one experiment per example
    experiment = f"property-{uuid.uuid4().hex[:8]}"
    table = mlp_grid(
        GridParams(
            lrs=lrs, iterations=iterations, seeds=seeds, cell_figures=False, experiment=experiment
        )
    ).cells
    cells = [r for r in all_runs(mlflow_store, experiment) if r.data.tags.get("lab2.step") == "mlp"]
    keys = sorted(
        (float(r.data.params["lr"]), int(r.data.params["iterations"]), int(r.data.params["seed"]))
        for r in cells
    )
    assert keys == sorted(product(lrs, iterations, seeds)) and len(table) == len(keys)
    for run in cells:
        assert run.info.status == "FINISHED"
        diverged = run.data.tags["lab2.diverged"] == "true"
        assert "diverged" not in run.data.metrics  # a tag, not a chart
        assert diverged or all(math.isfinite(run.data.metrics[m]) for m in METRICS)


def test_data_scaled_by_a_million_completes_every_cell(mlflow_store, tmp_path):
    from lab2.core.data import load_dataset

    iris = load_dataset("iris")
    rows = [
        ",".join(f"{v * 1e6:.1f}" for v in row) + f",{label}"
        for row, label in zip(iris.features.tolist(), iris.labels.tolist(), strict=True)
    ]
    (tmp_path / "big.csv").write_text("a,b,c,d,species\n" + "\n".join(rows) + "\n")
    table = mlp_grid(
        GridParams(
            lrs=(10.0, 0.1), iterations=(20,), seeds=(0,), dataset="big.csv", cell_figures=False
        )
    ).cells
    cells = [r for r in all_runs(mlflow_store) if r.data.tags.get("lab2.step") == "mlp"]
    assert len(cells) == len(table) == 2 and all(r.info.status == "FINISHED" for r in cells)
    for run in (
        cells
    ):  # the lab's scaling divides by the variance, so the scale itself cannot blow up training
        assert run.data.tags["lab2.diverged"] == "true" or all(
            math.isfinite(run.data.metrics[m]) for m in METRICS
        )
