"""Typed parameters shared by the flows and the CLI: one schema, validated at the edge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, Field

T = TypeVar("T")

BUILTIN_DATASETS = ("iris", "iris-uci")


class InputError(ValueError):
    """Input that lab2 cannot use; the message says what was wrong and what is allowed."""


def _distinct(values: Sequence[T]) -> Sequence[T]:
    if len(values) == 0:
        raise ValueError("must hold at least one value")
    repeated = sorted({v for v in values if list(values).count(v) > 1})
    if repeated:
        raise ValueError(f"values must be distinct; repeated: {repeated}")
    return values


def check_dataset_name(name: str) -> str:
    """A built-in dataset's name or a path ending in .csv."""
    if name not in BUILTIN_DATASETS and not name.lower().endswith(".csv"):
        raise InputError(f"unknown dataset {name!r}: use one of {', '.join(BUILTIN_DATASETS)} or a path ending in .csv")
    return name


LearningRate = Annotated[float, Field(gt=0, allow_inf_nan=False, description="step size, > 0 and finite")]
Count = Annotated[int, Field(ge=1, description="number of steps, ≥ 1")]
Seed = Annotated[int, Field(ge=0, description="seed of a torch.Generator, ≥ 0")]
Rank = Annotated[int, Field(ge=1, description="rank, 1 ≤ rank ≤ min(rows, columns)")]
Hidden = Annotated[int, Field(ge=1, le=4096, description="hidden units")]
Threads = Annotated[int, Field(ge=1, le=256, description="torch intra-op threads per shard (1 suits these tiny tensors)")]
Effect = Annotated[float, Field(gt=0, allow_inf_nan=False, description="smallest difference worth detecting, > 0 (accuracy units)")]
LearningRates = Annotated[tuple[LearningRate, ...], AfterValidator(_distinct)]
Counts = Annotated[tuple[Count, ...], AfterValidator(_distinct)]
Seeds = Annotated[tuple[Seed, ...], AfterValidator(_distinct)]
DatasetName = Annotated[str, AfterValidator(check_dataset_name)]
ExperimentName = Annotated[str, Field(min_length=1, max_length=250)]
Scaling = Literal["var", "std"]
Protocol = Literal["held-out", "seed-report"]
TaskRunnerName = Literal["threads", "dask"]

def axis_param(values: Sequence[float | int], sep: str = ",") -> str:
    """A grid axis as one flat MLflow param value, e.g. "0.1,0.01,0.001"."""
    return sep.join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def grid_params(
    lrs: Sequence[float], iterations: Sequence[int], seeds: Sequence[int], split_seeds: Sequence[int] = (0,)
) -> dict[str, str]:
    """The grid's axes as flat MLflow params."""
    axes = {"lrs": lrs, "iterations": iterations, "seeds": seeds, "split_seeds": split_seeds}
    return {name: axis_param(values) for name, values in axes.items()}


LAB_LRS = (0.1, 0.01, 0.001)
LAB_ITERATIONS = (100, 1000)
LAB_SEEDS = (0, 1, 2)
LAB_SPLIT_SEEDS = (0,)


@dataclass(frozen=True)
class MLPSetup:
    """Everything that fixes an MLP cell besides its lr, iteration count and seed."""

    dataset: str = "iris"
    split_seed: int = 0
    hidden: int = 12
    scaling: Scaling = "var"
    protocol: Protocol = "held-out"

    def as_params(self) -> dict[str, str | int]:
        return asdict(self)

    def shared_params(self) -> dict[str, str | int]:
        """The params every split of a grid shares (a grid's split seeds are an axis of their own)."""
        return {k: v for k, v in asdict(self).items() if k != "split_seed"}


@dataclass(frozen=True)
class FactorisationSetup:
    """Hyperparameters of the gradient-descent factorisation."""

    rank: int = 2
    lr: float = 0.01
    epochs: int = 1000
    seed: int = 0

    def as_params(self) -> dict[str, float | int]:
        return asdict(self)
