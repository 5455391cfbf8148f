"""The winner as MLflow's own client loads it (mlflow.pyfunc): raw rows with their column names in,
class names and probabilities out, the cell's scaling inside."""

import json

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from lab2.core.data import load_dataset
from lab2.core.mlp import prepare_mlp_data, served_model, train_cells
from lab2.tasks.tracking.runs import SERVED_MLP, served_requirements


def saved_model(tmp_path, dataset, split, cell):
    weights = tmp_path / "mlp.json"
    weights.write_text(json.dumps(served_model(cell.weights, split, dataset)))
    path = tmp_path / "model"
    mlflow.pyfunc.save_model(
        path,
        python_model=str(SERVED_MLP),
        artifacts={"mlp": str(weights)},
        pip_requirements=served_requirements(),
    )
    return mlflow.pyfunc.load_model(str(path))


def raw_rows(dataset, rows) -> pd.DataFrame:
    return pd.DataFrame(dataset.features[rows].numpy(), columns=dataset.columns())


def test_pyfunc_predictions_on_raw_iris_rows_reproduce_the_cells_val_accuracy(tmp_path):
    iris = load_dataset("iris")
    split = prepare_mlp_data(iris)
    (cell,) = train_cells(split, [(0.1, 0)], [1000], 12, "held-out")
    model = saved_model(tmp_path, iris, split, cell)
    predicted = model.predict(raw_rows(iris, split.val_index))
    truth = [iris.class_names[k] for k in split.y_val.tolist()]
    assert (predicted["species"] == truth).mean() == cell.val_accuracy
    assert list(predicted.columns) == [
        "species",
        "probability_setosa",
        "probability_versicolor",
        "probability_virginica",
    ]
    assert np.allclose(predicted.iloc[:, 1:].sum(axis=1), 1.0)
    # the columns are found by name, in any order
    shuffled = raw_rows(iris, split.val_index).iloc[:, ::-1]
    assert model.predict(shuffled)["species"].tolist() == predicted["species"].tolist()


def test_a_csv_with_string_labels_anywhere_and_a_constant_column(tmp_path):
    wine = datasets.load_wine(as_frame=True)
    frame = wine.data.assign(constant=1.0)
    frame.insert(3, "cultivar", [f"cultivar {k}" for k in wine.target])
    path = tmp_path / "wine.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(str(path), "cultivar")
    assert data.label_name == "cultivar" and "cultivar" not in data.columns()
    split = prepare_mlp_data(data, scaling="std")
    (cell,) = train_cells(split, [(0.1, 0)], [300], 12, "held-out")
    predicted = saved_model(tmp_path, data, split, cell).predict(raw_rows(data, split.val_index))
    truth = [data.class_names[k] for k in split.y_val.tolist()]
    assert (predicted["cultivar"] == truth).mean() == cell.val_accuracy


def test_a_missing_column_is_named(tmp_path):
    iris = load_dataset("iris")
    split = prepare_mlp_data(iris)
    (cell,) = train_cells(split, [(0.1, 0)], [10], 12, "held-out")
    rows = raw_rows(iris, split.val_index).drop(columns="petal width (cm)")
    with pytest.raises(ValueError, match="petal width"):
        saved_model(tmp_path, iris, split, cell).predict(rows)


def test_twenty_five_unbalanced_classes_train_serve_and_plot(tmp_path):
    from lab2.core.factorise import truncated_svd
    from lab2.core.plots import plot_u_scatter

    rng = np.random.default_rng(0)
    counts = [4 + 3 * k for k in range(25)]  # 4 to 76 rows a class
    labels = np.repeat(np.arange(25), counts)
    features = rng.normal(size=(len(labels), 6)) + labels[:, None] * 0.5
    frame = pd.DataFrame(features, columns=[f"x{k}" for k in range(6)]).assign(kind=labels)
    path = tmp_path / "many.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(str(path))
    assert len(data.class_names) == 25 and data.label_name == "kind"
    split = prepare_mlp_data(data, scaling="std")
    assert set(split.y_train.tolist()) == set(range(25))
    (cell,) = train_cells(split, [(0.1, 0)], [50], 12, "held-out")
    predicted = saved_model(tmp_path, data, split, cell).predict(raw_rows(data, split.val_index))
    assert set(predicted["kind"]) <= set(data.class_names) and predicted.shape[1] == 26
    svd = truncated_svd(data.features - data.features.mean(dim=0), 2)
    figure = plot_u_scatter(
        svd.u.numpy(), svd.u.numpy(), data.labels.numpy(), data.class_names, data.label_name
    )
    colours = {tuple(c.get_facecolor()[0]) for c in figure.axes[0].collections}
    assert len(colours) == 25
