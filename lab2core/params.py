"""Typed parameters shared by the flows and the CLI: one schema, validated at the edge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

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
TaskRunnerName = Literal["auto", "threads", "processes", "dask"]

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
DEFAULT_EXPERIMENT = "lab2"


@dataclass(frozen=True)
class Parameter:
    """One pipeline parameter: its type (validated by pydantic), its default and its help, written once."""

    type: object
    default: object
    help: str


# The pipeline's parameters: the `lab2` flow's signature, `lab2 run`'s options and the logged params
# all follow this table (tests hold the flow signatures to it).
PIPELINE_PARAMETERS: dict[str, Parameter] = {
    "dataset": Parameter(DatasetName, "iris", "iris (Fisher's, scikit-learn's copy), iris-uci, or PATH.csv"),
    "label_column": Parameter(str | None, None, "label column of a CSV dataset (default: its last column)"),
    "rank": Parameter(Rank, 2, "factorisation rank"),
    "gd_lr": Parameter(LearningRate, 0.01, "factorisation learning rate"),
    "gd_epochs": Parameter(Count, 1000, "factorisation epochs"),
    "gd_seed": Parameter(Seed, 0, "factorisation init seed"),
    "lrs": Parameter(LearningRates, LAB_LRS, "MLP learning rates"),
    "iterations": Parameter(Counts, LAB_ITERATIONS, "MLP iteration counts"),
    "seeds": Parameter(Seeds, LAB_SEEDS, "MLP init seeds"),
    "split_seeds": Parameter(Seeds, LAB_SPLIT_SEEDS, "seeds of the 100/50 train/validation shuffle; the grid runs on each"),
    "hidden": Parameter(Hidden, 12, "MLP hidden units"),
    "scaling": Parameter(Scaling, "var", "feature scaling: var (the lab's (x-mean)/var) or std"),
    "protocol": Parameter(Protocol, "held-out", "held-out (the design's recipe) or seed-report (the report's procedure)"),
    "cell_figures": Parameter(bool, True, "the learning-curve figure of each MLP cell (skip it for large sweeps)"),
    "torch_threads": Parameter(Threads, 1, "torch intra-op threads per grid shard"),
    "experiment": Parameter(ExperimentName, DEFAULT_EXPERIMENT, "MLflow experiment"),
    "task_runner": Parameter(TaskRunnerName, "auto", "where the grid's shards and their recording run: auto (threads, or processes from 200 cells), threads, processes or dask"),
    "dask_address": Parameter(str | None, None, "scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (default: a local cluster)"),
    "force": Parameter(bool, False, "recompute every unit, even those with a FINISHED run of the same identity"),
    "min_effect": Parameter(Effect, 0.02, "smallest val-accuracy difference worth detecting (one of Iris's 50 validation rows); lab2 says how many seeds it needs"),
}


def invalid_parameters(values: Mapping[str, object]) -> list[tuple[str, str]]:
    """Check values against PIPELINE_PARAMETERS: (name, what is wrong and what is allowed) per problem."""
    problems = []
    for name, value in values.items():
        try:
            TypeAdapter(PIPELINE_PARAMETERS[name].type).validate_python(value)
        except ValidationError as error:
            problems += [(name, e["msg"].removeprefix("Value error, ")) for e in error.errors()]
    return problems


@dataclass(frozen=True)
class MLPSetup:
    """Everything that fixes an MLP cell besides its lr, iteration count and seed."""

    dataset: str = PIPELINE_PARAMETERS["dataset"].default
    split_seed: int = PIPELINE_PARAMETERS["split_seeds"].default[0]
    hidden: int = PIPELINE_PARAMETERS["hidden"].default
    scaling: Scaling = PIPELINE_PARAMETERS["scaling"].default
    protocol: Protocol = PIPELINE_PARAMETERS["protocol"].default

    def as_params(self) -> dict[str, str | int]:
        return asdict(self)

    def shared_params(self) -> dict[str, str | int]:
        """The params every split of a grid shares (a grid's split seeds are an axis of their own)."""
        return {k: v for k, v in asdict(self).items() if k != "split_seed"}


@dataclass(frozen=True)
class FactorisationSetup:
    """Hyperparameters of the gradient-descent factorisation."""

    rank: int = PIPELINE_PARAMETERS["rank"].default
    lr: float = PIPELINE_PARAMETERS["gd_lr"].default
    epochs: int = PIPELINE_PARAMETERS["gd_epochs"].default
    seed: int = PIPELINE_PARAMETERS["gd_seed"].default

    def as_params(self) -> dict[str, float | int]:
        return asdict(self)
