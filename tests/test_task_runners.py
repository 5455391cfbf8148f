"""The grid's shards in Prefect's process pool and on Dask through prefect-dask give exactly the
thread runner's results."""

import pandas as pd
import pytest

from lab2.core.params import GridParams
from lab2.flows.mlp_grid import mlp_grid
from lab2.tasks.grid import PROCESSES_FROM_CELLS, grid_task_runner
from tests.helpers.mlflow_runs import all_runs
from tests.helpers.processes import descendants, left_behind

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.system]

GRID = dict(lrs=(0.1, 0.01, 0.001), iterations=(5, 50), seeds=(0, 1), cell_figures=False)
METRICS = ["train_accuracy", "val_accuracy", "train_loss", "val_loss"]


def _logged(client, experiment: str) -> pd.DataFrame:
    rows = [
        {
            "lr": float(r.data.params["lr"]),
            "iterations": int(r.data.params["iterations"]),
            "seed": int(r.data.params["seed"]),
            **{m: r.data.metrics[m] for m in METRICS},
        }
        for r in all_runs(client, experiment)
        if r.data.tags.get("lab2.step") == "mlp"
    ]
    return pd.DataFrame(rows).sort_values(["lr", "iterations", "seed"]).reset_index(drop=True)


def test_a_local_dask_cluster_gives_the_thread_runners_metrics_exactly(mlflow_store):
    pytest.importorskip("prefect_dask", reason="the dask extra is not installed")
    before = descendants()
    on_threads = mlp_grid(GridParams(**GRID, experiment="threads")).cells
    on_dask = mlp_grid(GridParams(**GRID, experiment="dask", task_runner="dask")).cells
    assert left_behind(before) == {}  # the local cluster's scheduler and workers are gone
    key = ["lr", "iterations", "seed"]
    pd.testing.assert_frame_equal(
        on_dask.sort_values(key).reset_index(drop=True),
        on_threads.sort_values(key).reset_index(drop=True),
        check_exact=True,
    )
    threads, dask = _logged(mlflow_store, "threads"), _logged(mlflow_store, "dask")
    assert len(dask) == 12
    pd.testing.assert_frame_equal(dask, threads, check_exact=True)


def test_prefects_process_pool_gives_the_thread_runners_metrics_exactly_and_leaves_no_process(
    mlflow_store,
):
    before = descendants()
    on_threads = mlp_grid(GridParams(**GRID, experiment="threads", task_runner="threads")).cells
    in_processes = mlp_grid(
        GridParams(**GRID, experiment="processes", task_runner="processes")
    ).cells
    assert left_behind(before) == {}
    key = ["lr", "iterations", "seed"]
    pd.testing.assert_frame_equal(
        in_processes.sort_values(key).reset_index(drop=True),
        on_threads.sort_values(key).reset_index(drop=True),
        check_exact=True,
    )
    pd.testing.assert_frame_equal(
        _logged(mlflow_store, "processes"), _logged(mlflow_store, "threads"), check_exact=True
    )


def test_the_runner_is_threads_for_a_small_grid_and_processes_for_a_large_one_unless_asked():
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    DaskTaskRunner = pytest.importorskip(
        "prefect_dask", reason="the dask extra is not installed"
    ).DaskTaskRunner

    assert isinstance(grid_task_runner(n_cells=18), ThreadPoolTaskRunner)
    assert isinstance(grid_task_runner(n_cells=PROCESSES_FROM_CELLS), ProcessPoolTaskRunner)
    assert isinstance(grid_task_runner("threads", n_cells=1000), ThreadPoolTaskRunner)
    assert isinstance(grid_task_runner("processes", n_cells=18), ProcessPoolTaskRunner)
    assert isinstance(grid_task_runner("dask", "tcp://127.0.0.1:8786"), DaskTaskRunner)
