"""Every run of an experiment, as a test reads it back."""

from __future__ import annotations

from mlflow.tracking import MlflowClient


def all_runs(client: MlflowClient, experiment: str = "lab2") -> list:
    """Every run of `experiment` (none if the experiment does not exist)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], max_results=5000)
