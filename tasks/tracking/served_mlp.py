"""lab2's winning MLP as MLflow loads and serves it (a model from code: MLflow copies this file into
the model, so loading it needs torch, pandas and MLflow, not lab2).

Input: a DataFrame with the dataset's feature columns in raw units. Output: a DataFrame with the
predicted class name (in a column named as the dataset's label) and one `probability_<class>`
column per class. The artifact `mlp` (JSON, lab2.core.mlp.served_model) holds the columns, the
classes, the scaling's statistics and the weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel, PythonModelContext


class ScaledMLP(PythonModel):
    """Scale each column as the cell's training did, then relu(x W1 + b1) W2 + b2 and softmax."""

    def load_context(self, context: PythonModelContext) -> None:
        spec = json.loads(Path(context.artifacts["mlp"]).read_text())
        self.columns: list[str] = spec["columns"]
        self.label: str = spec["label"]
        self.classes: list[str] = spec["classes"]
        self.mean = torch.tensor(spec["mean"], dtype=torch.float64)
        self.spread = torch.tensor(spec["spread"], dtype=torch.float64)
        self.weights = [torch.tensor(spec[k]) for k in ("w1", "b1", "w2", "b2")]

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        missing = [c for c in self.columns if c not in model_input.columns]
        if missing:
            raise ValueError(f"the input lacks the feature columns {missing}")
        raw = torch.tensor(model_input[self.columns].to_numpy(dtype="float64"))
        x = ((raw - self.mean) / self.spread).to(torch.float32)
        w1, b1, w2, b2 = self.weights
        with torch.no_grad():
            probabilities = torch.softmax(torch.relu(x @ w1 + b1) @ w2 + b2, dim=-1)
        predicted = pd.DataFrame(
            probabilities.double().numpy(), columns=[f"probability_{c}" for c in self.classes]
        )
        predicted.insert(0, self.label, [self.classes[k] for k in probabilities.argmax(-1)])
        return predicted


set_model(ScaledMLP())
