"""The flows end to end on a real temporary Prefect API, read back from MLflow through
MlflowClient."""

import json
import math
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from prefect.exceptions import ParameterTypeError

from lab2.core.data import LAB_MATRIX, centre, load_dataset
from lab2.core.factorise import truncated_svd
from lab2.core.mlp import prepare_mlp_data
from lab2.core.params import GridParams, Lab2Params
from lab2.core.seeds import compare_seeds
from lab2.flows.mlp_grid import mlp_grid
from lab2.flows.pipeline import lab2
from lab2.tasks import tracking
from tests.helpers.mlflow_runs import all_runs

pytestmark = pytest.mark.usefixtures("prefect_api")

DATA = prepare_mlp_data(load_dataset("iris"))
SMALL_GRID = dict(lrs=(0.1, 0.01), iterations=(5, 20), seeds=(0, 1))


def _children(runs, step):
    return [r for r in runs if r.data.tags.get("lab2.step") == step]


def _artifacts(client, run_id, path="figures"):
    return sorted(a.path for a in client.list_artifacts(run_id, path))


def test_lab2_flow_writes_the_design_layout(mlflow_store):
    result = lab2(Lab2Params(dataset="iris-uci", gd_epochs=50, **SMALL_GRID))
    runs = all_runs(mlflow_store)
    parents = [r for r in runs if r.data.tags.get("lab2.role") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.run_id == result.parent_run_id
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["lrs"] == "0.1,0.01" and parent.data.params["dataset"] == "iris-uci"
    assert parent.data.tags["prefect.flow_name"] == "lab2"
    assert all(
        r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in runs if r is not parent
    )
    assert len(runs) == 1 + 2 + 2 + 8
    assert _artifacts(mlflow_store, parent.info.run_id) == [
        f"figures/{name}.png"
        for name in (
            "cell_heatmap",
            "grid_summary",
            "mean_learning_curves",
            "paired_differences",
            "score_distributions",
            "u_scatter",
            "val_accuracy_vs_lr",
        )
    ]
    root = {a.path for a in mlflow_store.list_artifacts(parent.info.run_id)}
    assert {
        "factorisation.csv",
        "mlp_cells.csv",
        "seed_summary.csv",
        "seed_summary.html",
        "seed_pairs.csv",
    } <= root
    assert "neighbour_overlaps.csv" not in root
    # a grid without the lab's cells cannot answer the lab
    assert "report.html" not in root and result.report is None
    # what figures/u_scatter.png draws
    u = pd.read_csv(mlflow_store.download_artifacts(parent.info.run_id, "u.csv"))
    assert len(u) == 150 and list(u.columns) == ["species", "svd_u1", "svd_u2", "gd_u1", "gd_u2"]
    assert u["species"].value_counts().to_dict() == {
        "setosa": 50,
        "versicolor": 50,
        "virginica": 50,
    }
    assert parent.data.params["split_seeds"] == "0" and "split_seed" not in parent.data.params

    gd = {r.data.params["matrix"]: r for r in _children(runs, "gd-factorise")}
    assert set(gd) == {"lab1-3x3", "iris-uci"}
    assert gd["iris-uci"].data.params == {
        "matrix": "iris-uci",
        "rank": "2",
        "gd_lr": "0.01",
        "gd_epochs": "50",
        "gd_seed": "0",
        "gd_lr_used": "0.01",
    }
    history = mlflow_store.get_metric_history(gd["iris-uci"].info.run_id, "loss")
    assert [m.step for m in history] == list(range(51))  # 50 epochs, then the final loss
    assert history[-1].value == gd["iris-uci"].data.metrics["loss"]
    assert _artifacts(mlflow_store, gd["iris-uci"].info.run_id) == ["figures/u_scatter.png"]
    assert gd["iris-uci"].data.metrics["principal_angle_1_deg"] < 5.0

    svd = {r.data.params["matrix"]: r for r in _children(runs, "svd-baseline")}
    a = centre(load_dataset("iris-uci").features)
    assert svd["iris-uci"].data.metrics["loss"] == pytest.approx(truncated_svd(a, 2).loss)
    assert svd["iris-uci"].data.metrics["loss"] == pytest.approx(15.2288, abs=5e-5)
    q1 = pd.read_csv(
        mlflow_store.download_artifacts(parent.info.run_id, "factorisation.csv")
    ).set_index("matrix")
    assert q1.loc["iris-uci", "svd_loss"] == pytest.approx(15.2288, abs=5e-5)
    rebuilt = pd.read_csv(
        mlflow_store.download_artifacts(parent.info.run_id, "reconstruction.csv")
    ).sort_values(["row", "column"])
    on_gd_run = pd.read_csv(
        mlflow_store.download_artifacts(gd["lab1-3x3"].info.run_id, "reconstruction.csv")
    )
    pd.testing.assert_frame_equal(
        rebuilt.reset_index(drop=True),
        on_gd_run.sort_values(["row", "column"]).reset_index(drop=True),
    )
    optimum = truncated_svd(LAB_MATRIX, 2)
    assert rebuilt["a"].tolist() == pytest.approx(LAB_MATRIX.flatten().tolist())
    assert rebuilt["svd"].tolist() == pytest.approx(
        (optimum.u @ optimum.v.T).flatten().tolist(), abs=1e-6
    )
    assert ((rebuilt["a"] - rebuilt["gd"]) ** 2).sum() == pytest.approx(
        gd["lab1-3x3"].data.metrics["loss"], rel=1e-5
    )
    # Q1's losses live on their own runs; the chart view opens on the cells' metrics
    assert parent.data.metrics == {}
    (data,) = svd["iris-uci"].inputs.dataset_inputs
    assert (
        data.dataset.name == "iris-uci" and data.dataset.digest == load_dataset("iris-uci").digest
    )
    assert [t.value for t in data.tags] == ["training"]

    cells = _children(runs, "mlp")
    keys = sorted(
        (float(r.data.params["lr"]), int(r.data.params["iterations"]), int(r.data.params["seed"]))
        for r in cells
    )
    assert keys == sorted((lr, it, s) for lr in (0.1, 0.01) for it in (5, 20) for s in (0, 1))
    expected_params = {
        "lr",
        "iterations",
        "seed",
        "split_seed",
        "hidden",
        "scaling",
        "dataset",
        "protocol",
        "scaling_rows",
        "log10_lr",
    }
    for run in cells:
        assert set(run.data.params) == expected_params
        assert float(run.data.params["log10_lr"]) == pytest.approx(
            math.log10(float(run.data.params["lr"])), abs=1e-3
        )
        assert set(run.data.metrics) == {"train_accuracy", "val_accuracy", "train_loss", "val_loss"}
        contexts = {
            t.value
            for i in run.inputs.dataset_inputs
            for t in i.tags
            if t.key == "mlflow.data.context"
        }
        assert contexts == {"training", "validation"} and {
            i.dataset.name for i in run.inputs.dataset_inputs
        } == {"iris-uci"}
        assert (
            json.loads(run.inputs.dataset_inputs[0].dataset.schema)["mlflow_colspec"][-1]["name"]
            == "label"
        )
        assert run.data.tags["mlflow.note.content"].startswith(
            f"MLP cell lr {float(run.data.params['lr']):g}, {run.data.params['iterations']} "
            "full-batch steps"
        )
        assert 0.0 <= run.data.metrics["val_accuracy"] <= 1.0
        steps = [m.step for m in mlflow_store.get_metric_history(run.info.run_id, "train_loss")]
        assert steps == list(range(int(run.data.params["iterations"]) + 1))
        # root: MLflow's compare finds it
        assert [a.path for a in mlflow_store.list_artifacts(run.info.run_id)] == [
            "learning_curve.png"
        ]
        params = run.data.params
        assert (
            run.info.run_name
            == f"lr{float(params['lr']):g}·it{params['iterations']}·s{params['seed']}"
        )
    assert {r.data.tags["lab2.group"] for r in cells} == {
        f"lr={lr} it={it} dataset=iris-uci" for lr in (0.1, 0.01) for it in (5, 20)
    }
    description = parent.data.tags["mlflow.note.content"]
    assert (
        "Best group: lr=" in description
        and "| lr | iterations | seeds |" in description
        and "lab2.group" in description
    )
    frame = result.cells.set_index(["lr", "iterations", "seed"])
    for run in cells:
        key = (
            float(run.data.params["lr"]),
            int(run.data.params["iterations"]),
            int(run.data.params["seed"]),
        )
        assert run.data.metrics["val_accuracy"] == frame.loc[key, "val_accuracy"]
        # the validation rows behind the accuracy, one "1" per hit
        hits = run.data.tags["lab2.val_correct"]
        assert (
            len(hits) == 50
            and set(hits) <= {"0", "1"}
            and hits.count("1") / 50 == run.data.metrics["val_accuracy"]
        )
    pairs = pd.read_csv(mlflow_store.download_artifacts(parent.info.run_id, "seed_pairs.csv"))
    assert (pairs["rows_ci_low"] <= pairs["mean_diff"] + 1e-9).all() and (
        pairs["mean_diff"] <= pairs["rows_ci_high"] + 1e-9
    ).all()
    assert (
        "val_correct"
        not in pd.read_csv(
            mlflow_store.download_artifacts(parent.info.run_id, "mlp_cells.csv")
        ).columns
    )


def test_seed_summary_winner_model_and_prefect_artifacts(mlflow_store):
    cells = mlp_grid(GridParams(lrs=(0.5, 0.05), iterations=(10, 30), seeds=(0, 1, 2))).cells
    runs = all_runs(mlflow_store)
    (parent,) = [r for r in runs if r.data.tags.get("lab2.role") == "pipeline"]
    summary = pd.read_csv(mlflow_store.download_artifacts(parent.info.run_id, "seed_summary.csv"))
    expected = cells.groupby(["lr", "iterations"])["val_accuracy"].agg(["mean", "std", "count"])
    for row in summary.itertuples():
        assert row.val_accuracy_mean == pytest.approx(
            expected.loc[(row.lr, row.iterations), "mean"]
        )
        assert row.val_accuracy_std == pytest.approx(expected.loc[(row.lr, row.iterations), "std"])
        assert row.val_accuracy_n == 3
    # no per-group means: MLflow's group-by on lab2.group does that
    assert parent.data.metrics == {}

    best = (
        expected.reset_index()
        .sort_values(["mean", "iterations", "lr"], ascending=[False, True, False])
        .iloc[0]
    )
    assert (float(parent.data.params["best_lr"]), int(parent.data.params["best_iterations"])) == (
        best.lr,
        best.iterations,
    )
    assert parent.data.params["best_seed"] == "0"
    (version,) = mlflow_store.search_model_versions("name='lab2-mlp'")
    # as MLflow's own client loads it: raw rows with their column names in, species names out
    model = mlflow.pyfunc.load_model(f"models:/lab2-mlp/{version.version}")
    iris = load_dataset("iris")
    raw = pd.DataFrame(iris.features[DATA.val_index].numpy(), columns=iris.columns())
    predicted = model.predict(raw)
    expected_species = [iris.class_names[k] for k in DATA.y_val.tolist()]
    predicted_accuracy = (predicted["species"] == expected_species).mean()
    assert (
        predicted_accuracy
        == cells.set_index(["lr", "iterations", "seed"]).loc[
            (best.lr, best.iterations, 0), "val_accuracy"
        ]
    )
    probabilities = predicted[[f"probability_{c}" for c in iris.class_names]]
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    inputs = model.metadata.get_input_schema()
    assert inputs.input_names() == list(iris.columns())
    assert (
        version.tags["lr"] == f"{best.lr:g}"
        and version.tags["iterations"] == str(int(best.iterations))
        and version.tags["seed"] == "0"
    )
    card = version.description
    assert f"its group {best['mean']:.3f} (95% interval" in card and "over 3 seeds" in card
    assert f"`iris` (digest {load_dataset('iris').digest}), 150 rows, 3 classes" in card
    assert "50 validation rows" in card and "[lr" in card and "predicted `species`" in card

    # in the run's own experiment
    (logged,) = mlflow_store.search_logged_models([parent.info.experiment_id])
    assert logged.name == "lab2-mlp" and logged.source_run_id == parent.info.run_id
    assert [o.model_id for o in mlflow_store.get_run(parent.info.run_id).outputs.model_outputs] == [
        logged.model_id
    ]
    (cell,) = [r for r in runs if r.info.run_name == f"lr{best.lr:g}·it{int(best.iterations)}·s0"]
    assert {m.key: m.value for m in logged.metrics} == {
        k: cell.data.metrics[k]
        for k in ("train_accuracy", "val_accuracy", "train_loss", "val_loss")
    }
    assert {m.dataset_name for m in logged.metrics} == {"iris"}

    pairs = pd.read_csv(mlflow_store.download_artifacts(parent.info.run_id, "seed_pairs.csv"))
    for column in (
        "a",
        "b",
        "metric",
        "n",
        "mean_diff",
        "ci_low",
        "ci_high",
        "p_t",
        "p_signflip",
        "p_holm",
        "prob_improvement",
        "seeds_needed",
        "verdict",
        "call",
        "caveats",
        "p_equivalence_holm",
        "reasoning",
    ):
        assert column in pairs.columns
    assert (
        len(pairs) == 2 + 2 + 3 - 2
        and (pairs["n"] == 3).all()
        and (pairs["p_signflip"] >= 0.25).all()
    )
    assert parent.data.params["val_rows"] == "50"
    assert (
        summary["val_resolution"].eq(0.02).all()
        and summary["interval"].str.startswith("Student t interval").all()
    )

    flow_run_id = parent.data.tags["prefect.flow_run_id"]
    artifacts = {a.key: a for a in _prefect_artifacts(flow_run_id)}
    assert artifacts["seed-summary"].type == "table"
    assert len(json.loads(artifacts["seed-summary"].data)) == 4
    assert artifacts["seed-pairs"].type == "table"
    shown = json.loads(artifacts["seed-pairs"].data)
    # the call after the groups, the reasoning last; the caveats once, in its description
    assert [row["reasoning"] for row in shown] == pairs["reasoning"].tolist()
    assert [row["verdict"] for row in shown] == pairs["call"].tolist()
    assert list(shown[0])[-1] == "reasoning"
    assert artifacts["seed-pairs"].description.count("no distribution-free test") == 1
    assert parent.info.run_id in artifacts["mlflow-run"].data
    assert float(artifacts["mlp-grid-progress"].data) == 100.0


def _prefect_artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def test_the_lab_grid_writes_the_lab_report_on_its_parent_and_as_a_prefect_artifact(mlflow_store):
    result = lab2(Lab2Params(gd_epochs=50))
    assert result.report.startswith("file://") and result.report.endswith(
        f"/{result.parent_run_id}/artifacts/report.html"
    )
    root = {a.path for a in mlflow_store.list_artifacts(result.parent_run_id)}
    assert {"report.md", "report.html"} <= root
    markdown = Path(mlflow_store.download_artifacts(result.parent_run_id, "report.md")).read_text()
    html = Path(mlflow_store.download_artifacts(result.parent_run_id, "report.html")).read_text()
    assert markdown.startswith(
        f"# Lab 2 — PyTorch autograd, answered from lab2 run `{result.parent_run_id}`"
    )
    assert html.count("data:image/png;base64,") == 5 and 'src="figures/' not in html
    flow_run_id = mlflow_store.get_run(result.parent_run_id).data.tags["prefect.flow_run_id"]
    (artifact,) = [a for a in _prefect_artifacts(flow_run_id) if a.key == "lab-report"]
    assert (
        artifact.type == "markdown" and "## The original report's claims, checked" in artifact.data
    )
    assert (
        "![" not in artifact.data
        and "*Figure: U from SVD and from GD (`figures/u_scatter.png`" in artifact.data
    )
    assert artifact.data.startswith(
        f"**The whole report, its figures embedded:** `{result.report}`"
    )
    assert (
        "Q1_3: **supported**. SVD: 2 groups: setosa | versicolor + virginica; GD: 2 groups"
        in markdown
    )


def test_mlp_grid_alone_opens_its_own_parent_and_can_skip_cell_figures(mlflow_store):
    cells = mlp_grid(
        GridParams(
            lrs=(0.05,), iterations=(3,), seeds=(0, 1, 2), cell_figures=False, experiment="solo"
        )
    ).cells
    runs = all_runs(mlflow_store, "solo")
    parent = [r for r in runs if r.data.tags.get("lab2.role") == "pipeline"]
    assert len(parent) == 1 and parent[0].info.run_name == "mlp-grid"
    assert len(_children(runs, "mlp")) == 3 == len(cells)
    assert all(_artifacts(mlflow_store, r.info.run_id) == [] for r in _children(runs, "mlp"))


@pytest.mark.parametrize(
    "params",
    [
        dict(lrs=(0.0,)),
        dict(lrs=(float("inf"),)),
        dict(lrs=(0.1, 0.1)),
        dict(iterations=()),
        dict(iterations=(0,)),
        dict(seeds=(1, 1)),
        dict(rank=0),
        dict(gd_epochs=0),
        dict(dataset="mnist"),
        dict(scaling="minmax"),
    ],
)
def test_bad_flow_parameters_fail_validation_before_any_run(mlflow_store, params):
    with pytest.raises(ParameterTypeError):
        lab2(params=params)
    assert all_runs(mlflow_store) == []


def test_rank_beyond_the_data_fails_before_any_run(mlflow_store):
    with pytest.raises(Exception, match="rank 4 does not fit lab1-3x3"):
        lab2(Lab2Params(rank=4, **SMALL_GRID))
    assert all_runs(mlflow_store) == []


def test_a_failing_flow_marks_its_parent_failed(mlflow_store, monkeypatch):
    import lab2.tasks.compute

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(lab2.tasks.compute, "train_cells", broken)
    with pytest.raises(RuntimeError, match="boom"):
        mlp_grid(GridParams(**SMALL_GRID))
    (parent,) = all_runs(mlflow_store)
    assert parent.info.status == "FAILED"


def test_a_resumed_grid_still_gets_its_seed_summary_curves_and_model(mlflow_store):
    first = mlp_grid(
        GridParams(lrs=(0.5, 0.05), iterations=(4, 9), seeds=(0, 1), cell_figures=False)
    ).cells
    second = mlp_grid(
        GridParams(lrs=(0.5, 0.05), iterations=(4, 9), seeds=(0, 1), cell_figures=False)
    ).cells
    pd.testing.assert_frame_equal(first, second)
    parents = sorted(
        (r for r in all_runs(mlflow_store) if r.data.tags.get("lab2.role") == "pipeline"),
        key=lambda r: r.info.start_time,
    )
    resumed = parents[-1]
    assert resumed.data.tags["lab2.mlp_grid.units_reused"] == "8"
    assert "figures/mean_learning_curves.png" in _artifacts(mlflow_store, resumed.info.run_id)
    cells = tracking.read_cells(resumed.info.run_id).frame
    assert len(cells) == 8 and set(cells["seed"]) == {0, 1}
    assert resumed.data.params["best_seed"] == "0"
    # the same cell and group: logged once
    (logged,) = mlflow_store.search_logged_models([resumed.info.experiment_id])
    assert [
        o.model_id for o in mlflow_store.get_run(resumed.info.run_id).outputs.model_outputs
    ] == [logged.model_id]
    # the same winning unit: no new version
    assert len(mlflow_store.search_model_versions("name='lab2-mlp'")) == 1
    progress = {a.key: a for a in _prefect_artifacts(resumed.data.tags["prefect.flow_run_id"])}[
        "mlp-grid-progress"
    ]
    assert float(progress.data) == 100.0  # every cell reused: done, not left at 0 %

    # a group over 3 seeds: described anew
    mlp_grid(GridParams(lrs=(0.5, 0.05), iterations=(4, 9), seeds=(0, 1, 2), cell_figures=False))
    assert len(mlflow_store.search_logged_models([resumed.info.experiment_id])) == 2


@pytest.mark.system
def test_a_grid_over_two_split_seeds_reports_both_variance_sources(mlflow_store):
    cells = mlp_grid(
        GridParams(
            lrs=(0.5, 0.05),
            iterations=(10,),
            seeds=(0, 1, 2),
            split_seeds=(0, 1),
            cell_figures=False,
        )
    ).cells
    assert len(cells) == 12 and sorted(cells.groupby("split_seed").size().tolist()) == [6, 6]
    runs = all_runs(mlflow_store)
    mlp = _children(runs, "mlp")
    assert (
        sorted((r.data.params["split_seed"], r.info.run_name.endswith("·split1")) for r in mlp)
        == [("0", False)] * 6 + [("1", True)] * 6
    )
    # the MLflow UI groups a cell's seeds over both splits
    assert len({r.data.tags["lab2.group"] for r in mlp}) == 2
    (parent,) = [r for r in runs if r.data.tags.get("lab2.role") == "pipeline"]
    assert (
        parent.data.params["split_seeds"] == "0,1" and parent.data.params["best_split_seed"] == "0"
    )
    summary = pd.read_csv(mlflow_store.download_artifacts(parent.info.run_id, "seed_summary.csv"))
    assert (summary["n_split_seeds"] == 2).all() and (summary["val_accuracy_n"] == 6).all()
    for row in summary.itertuples():
        group = cells[cells["lr"] == row.lr].pivot(
            index="seed", columns="split_seed", values="val_accuracy"
        )
        assert row.val_accuracy_sd_init == pytest.approx(group.var(axis=0, ddof=1).mean() ** 0.5)
        assert row.val_accuracy_sd_split == pytest.approx(group.var(axis=1, ddof=1).mean() ** 0.5)
    (pair,) = pd.read_csv(
        mlflow_store.download_artifacts(parent.info.run_id, "seed_pairs.csv")
    ).itertuples()
    by_lr = cells.set_index(["lr", "seed", "split_seed"])["val_accuracy"]
    # The units are the 3 init seeds, each averaged over the 2 splits (the runs share seeds and
    # splits).
    per_seed = [
        sum(by_lr[(0.5, s, k)] - by_lr[(0.05, s, k)] for k in range(2)) / 2 for s in range(3)
    ]
    assert (pair.n, pair.n_split_seeds) == (3, 2) and pair.mean_diff == pytest.approx(
        sum(per_seed) / 3
    )
    assert pair.p_signflip_min == pytest.approx(2**-2)
    units = pd.read_csv(mlflow_store.download_artifacts(parent.info.run_id, "units/mlp_grid.csv"))
    assert len(units) == 12 and units["identity"].nunique() == 12
    read_back = compare_seeds(
        tracking.read_cells(parent.info.run_id).frame, val_rows=50
    ).summary  # what `lab2 compare` computes
    for column in (
        "val_accuracy_ci95_low",
        "val_accuracy_ci95_high",
        "val_accuracy_sd_init",
        "val_accuracy_sd_split",
    ):
        assert read_back[column].tolist() == pytest.approx(summary[column].tolist(), rel=1e-12)


def test_each_run_says_what_changed_since_the_last_run_with_its_parameters(mlflow_store, tmp_path):
    from sklearn.datasets import load_iris

    csv = tmp_path / "iris.csv"
    frame = load_iris(as_frame=True).frame
    frame.to_csv(csv, index=False)
    params = Lab2Params(dataset=str(csv), gd_epochs=50, report=False, **SMALL_GRID)
    first = lab2(params)
    assert first.since.predecessor is None
    again = lab2(params, return_state=True)  # every unit reused: nothing could move
    assert again.name == "Unchanged" and again.result().since.verdict == "unchanged"
    frame.loc[100:149, "petal length (cm)"] -= (
        1.5  # the third species' petals: Q1 and the grid see other data
    )
    frame.to_csv(csv, index=False)
    moved = lab2(params, return_state=True)
    since = moved.result().since
    assert (
        moved.name == "Changed"
        and since.verdict == "changed"
        and since.predecessor == again.result().parent_run_id
    )
    before, now = (
        _inputs(mlflow_store, run)["data"]
        for run in (first.parent_run_id, moved.result().parent_run_id)
    )
    assert since.causes == [f"data: digest {before} → {now}, 50 of 150 rows changed"]
    assert any(u.what == f"Q1 {csv.stem}" and u.verdict == "changed" for u in since.units)
    parent = mlflow_store.get_run(moved.result().parent_run_id)
    assert (
        parent.data.tags["lab2.watch"] == "changed"
        and parent.data.tags["lab2.watch.predecessor"] == since.predecessor
    )
    assert parent.data.tags["mlflow.note.content"].startswith("### Since the last run: **changed**")
    flow_run_id = parent.data.tags["prefect.flow_run_id"]
    (artifact,) = [a for a in _prefect_artifacts(flow_run_id) if a.key == "since-last-run"]
    assert "50 of 150 rows changed" in artifact.data


def _inputs(client, run_id: str) -> dict:
    """What a run recorded as going in (inputs.json)."""
    return json.loads(open(client.download_artifacts(run_id, "inputs.json")).read())
