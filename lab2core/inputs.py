"""Checks of a pipeline's inputs that need the data: run before anything is tracked."""

from __future__ import annotations

from collections.abc import Sequence

from lab2.core.data import DataError, constant_columns, factorisation_matrices, load_dataset
from lab2.core.errors import InputError
from lab2.core.factorise import check_rank
from lab2.core.mlp import prepare_mlp_data
from lab2.core.params import BUILTIN_DATASETS, MLPSetup


def check_pipeline_inputs(
    dataset: str, label_column: str | None, rank: int | None, setups: Sequence[MLPSetup]
) -> list[str]:
    """Load the dataset and check that the factorisation (at `rank`, if given) and the MLP on every
    setup (each split seed) can use it; raises InputError saying why not. Returns what a user
    should know of the data before the run (constant columns)."""
    if label_column is not None and dataset in BUILTIN_DATASETS:
        raise InputError(
            f"label column {label_column!r} given for the built-in dataset {dataset!r}; a "
            "label column applies to CSV datasets only"
        )
    data = load_dataset(dataset, label_column)
    if rank is not None:
        check_rank(rank, factorisation_matrices(data))
    for setup in setups:
        try:
            prepare_mlp_data(
                data, setup.split_seed, setup.scaling, setup.protocol, setup.scaling_rows
            )
        except DataError as error:
            raise DataError(f"{dataset}: {error}") from None
    constant = constant_columns(data)
    if not constant or not setups:
        return []
    shown = ", ".join(constant[:5]) + (
        f" and {len(constant) - 5} more" if len(constant) > 5 else ""
    )
    return [
        f"{data.name}: {len(constant)} constant feature column{'s' * (len(constant) > 1)} "
        f"({shown}) scale to 0 (spread 1, as scikit-learn's StandardScaler does)"
    ]
