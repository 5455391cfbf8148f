"""The tracking adapter: which errors are retried, and that a tracking call is."""

import warnings

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lab2.tasks.tracking import dataset
from lab2.tasks.tracking.connection import TrackingError, _transient


@pytest.mark.parametrize(
    "message",
    [
        # SQLite
        "UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest",
        # PostgreSQL
        (
            "BAD_REQUEST: (psycopg2.errors.UniqueViolation) duplicate key value violates unique "
            'constraint "dataset_pk"'
        ),
        "(sqlite3.OperationalError) database is locked",
        (
            "API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/create failed with "
            "exception Connection refused"
        ),
    ],
)
def test_races_and_outages_are_retried(message):
    assert _transient(MlflowException(message))


def test_a_bad_request_and_an_exhausted_retry_are_not():
    assert not _transient(MlflowException("INVALID_PARAMETER_VALUE: bad metric"))
    assert not _transient(TrackingError("MLflow did not answer for 60 s: … (Connection refused)"))


def test_a_tracking_call_is_retried_until_it_succeeds(monkeypatch, mlflow_store):
    from lab2.tasks.tracking import experiment_id

    calls = []
    real = MlflowClient.create_experiment

    def flaky(self, name, *args, **kwargs):
        calls.append(name)
        if len(calls) < 3:
            raise MlflowException("database is locked")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "create_experiment", flaky)
    assert experiment_id("x") == mlflow_store.get_experiment_by_name("x").experiment_id
    assert calls == ["x"] * 3


def test_a_call_that_stays_down_ends_in_a_tracking_error_naming_what_was_not_logged(
    monkeypatch, mlflow_store
):
    from lab2.tasks.tracking import experiment_id

    def down(self, name, *args, **kwargs):
        raise MlflowException("Connection refused")

    monkeypatch.setenv("LAB2_TRACKING_RETRY_SECONDS", "0.5")
    monkeypatch.setattr(MlflowClient, "create_experiment", down)
    with pytest.raises(TrackingError, match=r"did not answer for 0.5 s: experiment 'y' was not"):
        experiment_id("y")


def test_a_description_longer_than_a_tag_is_cut_at_a_paragraph_and_kept_whole_as_an_artifact(
    mlflow_store,
):
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    from lab2.tasks.layout import DESCRIPTION_TAG
    from lab2.tasks.tracking import set_description

    run_id = mlflow_store.create_run(mlflow_store.create_experiment("long")).info.run_id
    paragraphs = [f"paragraph {k}: " + "x" * 180 for k in range(100)]
    set_description(run_id, "\n\n".join(paragraphs))
    shown = mlflow_store.get_run(run_id).data.tags[DESCRIPTION_TAG]
    assert len(shown) <= MAX_TAG_VAL_LENGTH and shown.endswith(
        "the whole description is the artifact `description.md`.)"
    )
    assert shown.split("\n\n")[-2] in paragraphs  # cut between paragraphs
    with open(mlflow_store.download_artifacts(run_id, "description.md")) as whole:
        assert whole.read() == "\n\n".join(paragraphs)


def test_a_description_of_one_paragraph_longer_than_a_tag_is_cut_inside_it(mlflow_store):
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    from lab2.tasks.layout import DESCRIPTION_TAG
    from lab2.tasks.tracking import set_description

    run_id = mlflow_store.create_run(mlflow_store.create_experiment("one-paragraph")).info.run_id
    set_description(run_id, "y" * (2 * MAX_TAG_VAL_LENGTH))
    shown = mlflow_store.get_run(run_id).data.tags[DESCRIPTION_TAG]
    assert (
        len(shown) <= MAX_TAG_VAL_LENGTH
        and shown.startswith("y" * 1000)
        and shown.endswith("`description.md`.)")
    )


@pytest.mark.parametrize("failing", ["training", "writing"])
def test_a_winner_model_that_fails_leaves_no_logged_model_behind(
    mlflow_store, monkeypatch, failing
):
    import mlflow.pyfunc

    from lab2.tasks.tracking import WinnerModel, log_winner_model

    def broken(*args, **kwargs):
        raise RuntimeError(f"{failing} failed")

    exp_id = mlflow_store.create_experiment("winner")
    parent = mlflow_store.create_run(exp_id).info.run_id
    if failing == "writing":
        monkeypatch.setattr(mlflow.pyfunc, "log_model", broken)
    train = broken if failing == "training" else (lambda: {"columns": ["a"]})
    example = pd.DataFrame({"a": [1.0, 2.0]})
    winner = WinnerModel(train, example, parent, "an-identity", {}, {}, "a model", {})
    with pytest.raises(RuntimeError, match=f"{failing} failed"):
        log_winner_model(parent, "lab2-mlp", winner)
    assert mlflow_store.search_logged_models([exp_id]) == []


def test_a_csv_dataset_keeps_its_path_as_a_local_source_without_a_warning(tmp_path):
    path = str(tmp_path / "my data.csv")
    frame = pd.DataFrame({"a": [1.0, 2.0], "label": ["x", "y"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        built = dataset(frame, "my data", "abc123", path, "label")
    assert built.source.to_dict() == {"uri": path}
    assert built.to_dict()["source_type"] == "local"
    assert (built.name, built.digest, built.targets) == ("my data", "abc123", "label")
