"""Resume: units are found again by identity, reused instead of recomputed, never held twice; stale
runs are reaped."""

import subprocess
import sys

import pandas as pd
import pytest

from lab2.core.params import GridParams, Lab2Params
from lab2.flows.mlp_grid import mlp_grid
from lab2.flows.pipeline import lab2
from lab2.tasks import tracking
from tests.helpers.mlflow_runs import all_runs

pytestmark = pytest.mark.usefixtures("prefect_api")

GRID = dict(lrs=(0.1, 0.01), iterations=(5, 20), seeds=(0,), gd_epochs=30)


def carriers(runs) -> dict[str, list]:
    """FINISHED runs by the identity they carry."""
    found: dict[str, list] = {}
    for run in runs:
        if run.info.status == "FINISHED" and "lab2.identity" in run.data.tags:
            found.setdefault(run.data.tags["lab2.identity"], []).append(run)
    return found


def units(client, parent_run_id) -> pd.DataFrame:
    paths = [a.path for a in client.list_artifacts(parent_run_id, "units")]
    return pd.concat(
        [pd.read_csv(client.download_artifacts(parent_run_id, p)) for p in sorted(paths)],
        ignore_index=True,
    )


def test_a_second_run_reuses_every_unit_and_a_wider_grid_computes_only_the_new_cells(mlflow_store):
    first = lab2(Lab2Params(**GRID))
    n_first = len(all_runs(mlflow_store))
    assert n_first == 1 + 4 + 4

    second = lab2(Lab2Params(**GRID))
    runs = all_runs(mlflow_store)
    assert len(runs) == n_first + 1  # only the new parent
    table = units(mlflow_store, second.parent_run_id)
    assert len(table) == 8 and table["reused"].all()
    # what the CLI prints
    assert (
        second.units["run_id"].tolist() == table["run_id"].tolist() and second.units["reused"].all()
    )
    assert set(table["run_id"]) == {
        r.info.run_id for r in runs if r.data.tags.get("mlflow.parentRunId") == first.parent_run_id
    }
    pd.testing.assert_frame_equal(first.cells, second.cells)
    pd.testing.assert_frame_equal(first.factorisation, second.factorisation)
    parent = mlflow_store.get_run(second.parent_run_id)
    assert (
        parent.data.tags["lab2.mlp_grid.units_reused"] == "4"
        and parent.data.tags["lab2.mlp_grid.units_computed"] == "0"
    )
    assert "figures/u_scatter.png" in [
        a.path for a in mlflow_store.list_artifacts(second.parent_run_id, "figures")
    ]

    wider = lab2(Lab2Params(**{**GRID, "seeds": (0, 1)}))
    table = units(mlflow_store, wider.parent_run_id)
    computed = table[~table["reused"]]
    assert sorted(computed["name"]) == [
        "lr0.01·it20·s1",
        "lr0.01·it5·s1",
        "lr0.1·it20·s1",
        "lr0.1·it5·s1",
    ]
    assert all(len(v) == 1 for v in carriers(all_runs(mlflow_store)).values())


def test_force_recomputes_and_the_newest_run_alone_keeps_the_identity(mlflow_store):
    cells = dict(lrs=(0.1,), iterations=(3,), seeds=(0, 1), cell_figures=False)
    mlp_grid(GridParams(**cells))
    old = {r.info.run_id for r in all_runs(mlflow_store) if r.data.tags.get("lab2.step") == "mlp"}
    mlp_grid(GridParams(**cells, force=True))
    runs = all_runs(mlflow_store)
    mlp = [r for r in runs if r.data.tags.get("lab2.step") == "mlp"]
    assert len(mlp) == 4 and all(r.info.status == "FINISHED" for r in mlp)
    held = carriers(runs)
    assert len(held) == 2 and all(
        len(v) == 1 and v[0].info.run_id not in old for v in held.values()
    )
    superseded = [r for r in mlp if r.info.run_id in old]
    assert all(
        r.data.tags["lab2.superseded_by"] in {v[0].info.run_id for v in held.values()}
        for r in superseded
    )


def test_runs_left_running_by_a_gone_process_are_killed_and_recomputed_but_live_ones_are_kept(
    mlflow_store,
):
    mlp_grid(GridParams(lrs=(0.1,), iterations=(3,), seeds=(0,), cell_figures=False))
    (cell,) = [r for r in all_runs(mlflow_store) if r.data.tags.get("lab2.step") == "mlp"]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_owner = tracking.owner_of(gone.pid)
    gone.wait()
    # The finished cell becomes a run its dead owner left RUNNING; another run belongs to this live
    # process.
    mlflow_store.set_tag(cell.info.run_id, "lab2.owner", gone_owner)
    mlflow_store.update_run(cell.info.run_id, status="RUNNING")
    live = mlflow_store.create_run(
        cell.info.experiment_id, tags={"lab2.owner": tracking.owner()}
    ).info.run_id

    mlp_grid(GridParams(lrs=(0.1,), iterations=(3,), seeds=(0,), cell_figures=False))
    assert mlflow_store.get_run(cell.info.run_id).info.status == "KILLED"
    assert "was gone" in mlflow_store.get_run(cell.info.run_id).data.tags["lab2.stale"]
    assert mlflow_store.get_run(live).info.status == "RUNNING"
    runs = all_runs(mlflow_store)
    assert [len(v) for v in carriers(runs).values()] == [1]
    assert sum(r.info.status == "RUNNING" for r in runs) == 1


def test_one_lab2_run_scans_the_experiment_at_most_once_per_flow(mlflow_store, monkeypatch):
    from mlflow.tracking import MlflowClient

    calls = []
    search = MlflowClient.search_runs
    monkeypatch.setattr(
        MlflowClient, "search_runs", lambda self, *a, **k: calls.append(a) or search(self, *a, **k)
    )
    for _ in range(2):  # cold, then every unit reused
        calls.clear()
        lab2(Lab2Params(**GRID))
        # lab2, factorise-matrices, train-grid, and the lookup of the last run with these params
        assert len(calls) <= 4, calls
        assert sum("lab2.params_key" in str(c) for c in calls) == 1
