"""The lab's recipe values and the types of its parameters: what a setup is, what is allowed, the lab's defaults."""

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


LearningRate = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0)]
LearningRates = Annotated[tuple[LearningRate, ...], AfterValidator(_distinct)]
Counts = Annotated[tuple[Count, ...], AfterValidator(_distinct)]
Seeds = Annotated[tuple[Seed, ...], AfterValidator(_distinct)]
DatasetName = Annotated[str, AfterValidator(check_dataset_name)]
Scaling = Literal["var", "std"]
Protocol = Literal["held-out", "seed-report"]

# The lab's grid (report, Q2_2).
LAB_LRS = (0.1, 0.01, 0.001)
LAB_ITERATIONS = (100, 1000)
LAB_SEEDS = (0, 1, 2)
DEFAULT_MIN_EFFECT = 0.02  # smallest val-accuracy difference worth detecting: one validation sample of Iris's 50


@dataclass(frozen=True)
class MLPSetup:
    """Everything that fixes an MLP cell besides its lr, iteration count and seed; the defaults are the lab's."""

    dataset: str = "iris"
    split_seed: int = 0
    hidden: int = 12
    scaling: Scaling = "var"
    protocol: Protocol = "held-out"

    def as_params(self) -> dict[str, str | int]:
        return asdict(self)


@dataclass(frozen=True)
class FactorisationSetup:
    """Hyperparameters of the gradient-descent factorisation; the defaults are the lab's."""

    rank: int = 2
    lr: float = 0.01
    epochs: int = 1000
    seed: int = 0

    def as_params(self) -> dict[str, float | int]:
        return asdict(self)
