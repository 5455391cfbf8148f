"""MLflow alone, writing the sweep's 1,000 cell runs the way lab2 writes a cell, in one process on a
fresh SQLite store: a run created with its tags, one log_batch (params, final metrics, a
101-point curve), its two datasets, its end. No training, no Prefect, no figures: the floor under
a tracked sweep on this store.

python benchmarks/mlflow_floor.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import mlflow.data
import numpy as np
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from lab2.tasks.layout import DIVERGED_TAG, GROUP_TAG, IDENTITY_TAG, PARENT_TAG, STEP_TAG

CURVE_POINTS = 101  # lab2's curve of a cell of 1,000 iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    experiment = client.create_experiment("floor")
    parent = client.create_run(experiment).info.run_id
    frame = pd.DataFrame(
        np.random.default_rng(0).normal(size=(100, 4)), columns=list("abcd")
    ).assign(label="setosa")
    parts = {"training": frame, "validation": frame.head(50)}
    datasets = {
        k: mlflow.data.from_pandas(
            f, source=CodeDatasetSource({"loader": "floor"}), targets="label", name="iris"
        )
        for k, f in parts.items()
    }
    started = time.perf_counter()
    for k in range(args.runs):
        tags = {
            PARENT_TAG: parent,
            STEP_TAG: "mlp",
            IDENTITY_TAG: f"{k:024x}",
            GROUP_TAG: "g",
            DIVERGED_TAG: "false",
        }
        run = client.create_run(experiment, tags=tags, run_name=f"cell {k}").info.run_id
        now = int(time.time() * 1000)
        params = [
            Param(p, "1")
            for p in (
                "lr",
                "iterations",
                "seed",
                "split_seed",
                "hidden",
                "scaling",
                "dataset",
                "protocol",
                "log10_lr",
            )
        ]
        metrics = [
            Metric(m, 0.5, now, CURVE_POINTS)
            for m in ("train_accuracy", "val_accuracy", "train_loss", "val_loss")
        ]
        metrics += [Metric("train_loss", 1.0 / (s + 1), now, s) for s in range(CURVE_POINTS)]
        client.log_batch(run, metrics=metrics, params=params)
        client.log_inputs(
            run,
            datasets=[
                DatasetInput(_entity(d), [InputTag(MLFLOW_DATASET_CONTEXT, c)])
                for c, d in datasets.items()
            ],
        )
        client.set_terminated(run, "FINISHED")
    seconds = time.perf_counter() - started
    print(f"{args.runs} runs in {seconds:.1f} s: {1000 * seconds / args.runs:.0f} ms a run")


def _entity(dataset: mlflow.data.pandas_dataset.PandasDataset) -> Dataset:
    """The dataset as a run's input holds it, from its public description (as lab2 builds it)."""
    described = dataset.to_dict()
    fields = ("name", "digest", "source_type", "source", "schema", "profile")
    return Dataset(**{k: described.get(k) for k in fields})


if __name__ == "__main__":
    main()
