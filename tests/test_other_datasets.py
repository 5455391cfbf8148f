"""Data the lab never chose: scikit-learn's wine, breast cancer and digits written as a user's CSVs,
through `lab2 run` end to end, at the lab's step and at `--gd-lr auto`."""

import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sklearn import datasets

from lab2.core.factorise import CONVERGED_WITHIN
from lab2.tasks.layout import GD_OUTCOME_TAG, GD_STEP, STEP_TAG
from tests.helpers.lab2_runs import lab2_run
from tests.helpers.mlflow_runs import all_runs


def write_csv(folder: Path, name: str) -> Path:
    """A scikit-learn dataset as a CSV: its column names, the class names in a label column
    last; `digits-61` is digits without its 3 constant pixel columns."""
    loader = {
        "wine": datasets.load_wine,
        "breast-cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "digits-61": datasets.load_digits,
    }[name]
    bunch = loader(as_frame=True)
    frame = bunch.data.copy()
    if name == "digits-61":
        frame = frame.loc[:, frame.nunique() > 1]
    frame["label"] = [str(bunch.target_names[k]) for k in bunch.target]
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.system
@pytest.mark.parametrize("name", ["wine", "breast-cancer", "digits", "digits-61"])
def test_a_users_csv_runs_end_to_end_and_the_auto_step_reaches_the_optimum(
    tmp_path, prefect_api, name
):
    csv = write_csv(tmp_path, name)
    lab = lab2_run(tmp_path, prefect_api, "--dataset", str(csv), "--experiment", "lab")
    q1 = lab.split("Q1 factorisation")[1].split("\n\n")[0]
    # the lab's step diverges on each: flagged in the table, with the step that would converge
    assert re.search(rf"\n *{name} +0.01 +— .* diverged", q1), q1
    assert f"GD diverged on {name} at lr 0.01" in q1 and "--gd-lr auto" in q1
    if name == "digits":
        assert lab.count("3 constant feature columns (pixel_0_0, pixel_4_0, pixel_4_7)") == 1

    auto = lab2_run(
        tmp_path, prefect_api, "--dataset", str(csv), "--experiment", "auto", "--gd-lr", "auto"
    )
    assert "not converged" not in auto and "diverged on" not in auto

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for experiment in ("lab", "auto"):
        runs = all_runs(client, experiment)
        assert {r.info.status for r in runs} == {"FINISHED"}
        gd = {r.data.params["matrix"]: r for r in runs if r.data.tags.get(STEP_TAG) == GD_STEP}
        expected = "diverged" if experiment == "lab" else "converged"
        assert gd[name].data.tags[GD_OUTCOME_TAG] == expected
    for run in (r for r in all_runs(client, "auto") if r.data.tags.get(STEP_TAG) == GD_STEP):
        # within 1% of the SVD optimum, the step logged as taken
        assert run.data.metrics["optimum_gap"] <= CONVERGED_WITHIN
        assert float(run.data.params["gd_lr_used"]) > 0 and run.data.params["gd_lr"] == "auto"
