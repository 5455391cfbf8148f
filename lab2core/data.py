"""Datasets of the lab: the 3x3 matrix, Iris (Fisher's and UCI's copies), user CSVs; split and
scaling."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import pandas as pd
import torch

from lab2.core.errors import InputError
from lab2.core.identity import data_file
from lab2.core.params import BUILTIN_DATASETS, Scaling, check_dataset_name

LAB_MATRIX = torch.tensor(
    [[0.3374, 0.6005, 0.1735], [3.3359, 0.0492, 1.8374], [2.9407, 0.5301, 2.2620]]
)
LAB_MATRIX_NAME = "lab1-3x3"

# The UCI file differs from Fisher's paper (scikit-learn's copy) in the 35th and 38th samples.
_UCI_ROWS = {34: [4.9, 3.1, 1.5, 0.1], 37: [4.9, 3.1, 1.5, 0.1]}


class DataError(InputError):
    """A dataset that cannot be used: says what is wrong and what is allowed."""


CSV_FORM = (
    "expected a CSV with a header row, numeric feature columns and a label column (default: the "
    "last)"
)
MIN_ROWS = 3


@dataclass(frozen=True)
class Dataset:
    """Features (float64, rows x features), integer labels and the class names they index."""

    name: str
    features: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...] = ()
    source: str = ""  # where it came from: a CSV's path or the loader
    label_name: str = "label"  # what the labels are: a CSV's label column, Iris's species

    def columns(self) -> list[str]:
        """Feature column names (x0, x1, … where the data has none)."""
        return list(self.feature_names) or [f"x{k}" for k in range(self.features.shape[1])]

    @cached_property
    def digest(self) -> str:
        """Short content hash of features and labels, to tell two copies of data apart (hashed
        once)."""
        h = hashlib.sha256(self.features.numpy().tobytes())
        h.update(self.labels.numpy().tobytes())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    """Row indices of the training and validation parts."""

    train: torch.Tensor
    val: torch.Tensor


def load_dataset(name: str, label_column: str | None = None) -> Dataset:
    """Load `iris`, `iris-uci` or a CSV path (numeric features plus one label column).

    Read once per process while the file is unchanged: a run's checks and stages share one copy.
    """
    builtin = check_dataset_name(name) in BUILTIN_DATASETS
    return _load_dataset(name, label_column, None if builtin else _file_stamp(Path(name)))


@lru_cache(maxsize=4)
def _load_dataset(name: str, label_column: str | None, stamp: tuple[int, int] | None) -> Dataset:
    if name in BUILTIN_DATASETS:
        return load_iris_dataset(uci=name == "iris-uci")
    return load_csv_dataset(Path(name), label_column)


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """(modification time in ns, size in bytes) of a file; None if it cannot be read (loading then
    says why)."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


# load_iris's names
IRIS_FEATURES = (
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
)


def load_iris_dataset(uci: bool = False) -> Dataset:
    """Iris as `sklearn.datasets.load_iris` reads it from its bundled file (Fisher's), without
    importing scikit-learn: its import takes 0.4 s, most of it scipy.stats. `uci=True` applies
    the UCI file's two differences."""
    path = data_file("iris")
    with path.open() as file:
        # "150,4,setosa,versicolor,virginica"
        class_names = tuple(file.readline().strip().split(",")[2:])
    table = pd.read_csv(path, skiprows=1, header=None).to_numpy()
    features = torch.tensor(table[:, :-1], dtype=torch.float64)
    if uci:
        for row, values in _UCI_ROWS.items():
            features[row] = torch.tensor(values, dtype=torch.float64)
    labels = torch.tensor(table[:, -1], dtype=torch.long)
    name = "iris-uci" if uci else "iris"
    # what the data is
    source = "sklearn.datasets.load_iris" + (
        " with the UCI file's samples 35 and 38" if uci else ""
    )
    return Dataset(name, features, labels, class_names, IRIS_FEATURES, source, "species")


def load_csv_dataset(path: Path, label_column: str | None = None) -> Dataset:
    """A CSV with a header: numeric feature columns and a label column (default: the last one)."""
    frame = _read_csv(path)
    label = label_column if label_column is not None else frame.columns[-1]
    if label not in frame.columns:
        raise DataError(f"{path}: no label column {label!r}; columns are {list(frame.columns)}")
    feature_frame = frame.drop(columns=[label])
    if feature_frame.shape[1] == 0:
        raise DataError(f"{path}: needs at least one feature column besides the label {label!r}")
    non_numeric = [
        c for c in feature_frame.columns if not pd.api.types.is_numeric_dtype(feature_frame[c])
    ]
    if non_numeric:
        raise DataError(f"{path}: feature columns must be numeric; not numeric: {non_numeric}")
    values = torch.tensor(feature_frame.to_numpy(dtype="float64"))
    if not torch.isfinite(values).all():
        bad = (~torch.isfinite(values)).nonzero()
        row, column = bad[0].tolist()
        raise DataError(
            f"{path}: data row {row + 1} (line {row + 2}), column {feature_frame.columns[column]!r}"
            f" holds {frame[feature_frame.columns[column]].iloc[row]}; every feature must be a "
            f"finite number (cells with NaN, inf or empty: {len(bad)})"
        )
    if frame[label].isna().any():
        raise DataError(f"{path}: label column {label!r} has empty cells; every row needs a label")
    codes, classes = pd.factorize(frame[label].astype(str), sort=True)
    if len(classes) < 2:
        raise DataError(f"{path}: label column {label!r} holds one class; at least two are needed")
    return Dataset(
        path.stem,
        values,
        torch.tensor(codes, dtype=torch.long),
        tuple(classes),
        tuple(map(str, feature_frame.columns)),
        str(path.resolve()),
        str(label),
    )


def _read_csv(path: Path) -> pd.DataFrame:
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a file; {CSV_FORM}")
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the path of an existing CSV file")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; {CSV_FORM}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        raise DataError(
            f"{path}: not a readable CSV ({error}); {CSV_FORM}, the same number of fields on "
            "every line"
        ) from None
    if frame.empty:
        raise DataError(
            f"{path}: has a header but no data rows; at least {MIN_ROWS} rows are needed"
        )
    return frame


def labelled_frame(
    features: torch.Tensor,
    columns: list[str],
    labels: torch.Tensor | None = None,
    class_names: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Features as a table, with a `label` column of class names when labels are given."""
    frame = pd.DataFrame(features.detach().double().numpy(), columns=columns)
    if labels is not None:
        frame["label"] = [class_names[k] for k in labels.tolist()]
    return frame


def centre(matrix: torch.Tensor) -> torch.Tensor:
    """Subtract each column's mean."""
    return matrix - matrix.mean(dim=0)


def split_rows(
    n_rows: int, split_seed: int = 0, train_fraction: float = 2 / 3, shuffle: bool = True
) -> Split:
    """Shuffle rows with `split_seed` (or keep file order); the first `train_fraction` train (100 of
    Iris's 150)."""
    if shuffle:
        perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(split_seed))
    else:
        perm = torch.arange(n_rows)
    n_train = round(n_rows * train_fraction)
    if n_rows < MIN_ROWS or n_train >= n_rows:
        raise DataError(
            f"{n_rows} rows cannot be split into training and validation parts: at least "
            f"{MIN_ROWS} rows are needed"
        )
    return Split(train=perm[:n_train], val=perm[n_train:])


def check_split_classes(
    labels: torch.Tensor,
    split: Split,
    class_names: tuple[str, ...],
    split_seed: int,
    need_all_in_training: bool = True,
) -> None:
    """Refuse labels a split cannot serve: a class with fewer than 2 rows, or (held-out) a class
    absent from the training rows."""
    counts = torch.bincount(labels, minlength=len(class_names)).tolist()
    per_class = ", ".join(f"{name}: {n}" for name, n in zip(class_names, counts, strict=True))
    rare = [(name, n) for name, n in zip(class_names, counts, strict=True) if n < 2]
    if rare:
        which = ", ".join(f"{name!r} has {n} row{'s' * (n != 1)}" for name, n in rare)
        raise DataError(
            f"class {which}; every class needs at least 2 rows, one to train on and one to "
            f"validate (rows per class: {per_class})"
        )
    if not need_all_in_training:
        return
    in_training = torch.bincount(labels[split.train], minlength=len(class_names)).tolist()
    missing = [
        (name, n) for name, n, t in zip(class_names, counts, in_training, strict=True) if t == 0
    ]
    if missing:
        which = ", ".join(f"{name!r} (0 of its {n} rows)" for name, n in missing)
        raise DataError(
            f"split seed {split_seed} leaves class {which} out of the {len(split.train)} "
            "training rows, so the model never sees it; "
            f"choose another split seed or add rows of that class (rows per class: {per_class})"
        )


def scaling_statistics(
    features: torch.Tensor, scaling: Scaling = "var"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each feature's mean and spread: its variance (the lab's) or standard deviation (`std`). A
    constant feature gets spread 1, as scikit-learn's StandardScaler gives it, so it scales to 0."""
    spread = features.var(dim=0) if scaling == "var" else features.std(dim=0)
    if not all(math.isfinite(s) for s in spread.tolist()):
        raise DataError("every feature needs a finite spread to be scaled; values overflow it")
    return features.mean(dim=0), torch.where(spread > 0, spread, torch.ones_like(spread))


def scale(
    features: torch.Tensor, scaling: Scaling = "var", fitted_on: torch.Tensor | None = None
) -> torch.Tensor:
    """The lab's scaling `(x - mean) / var`, or `std` for standardisation, with the statistics of
    the rows `fitted_on` (default: all rows, as the lab does)."""
    mean, spread = scaling_statistics(features if fitted_on is None else fitted_on, scaling)
    return (features - mean) / spread


def constant_columns(dataset: Dataset) -> list[str]:
    """The feature columns that hold one value on every row (scaled to 0)."""
    constant = (dataset.features == dataset.features[0]).all(dim=0).tolist()
    return [name for name, same in zip(dataset.columns(), constant, strict=True) if same]


def factorisation_matrices(dataset: Dataset) -> dict[str, torch.Tensor]:
    """The matrices Q1 factorises: the lab's 3x3 matrix and the dataset's centred features."""
    return {LAB_MATRIX_NAME: LAB_MATRIX, dataset.name: centre(dataset.features)}
