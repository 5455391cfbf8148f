"""The lab's parameters, declared once: their types and bounds, the lab's recipe values, and one
pydantic model per flow. The flow signatures, `lab2 run`'s options, Prefect's parameter form and
prefect.yaml's deployments all follow these models (each default, bound and help text is written
here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_settings import CliVariadicArg

from lab2.core.errors import InputError
from lab2.core.settings import env_name
from lab2.core.workload import RunCost, data_shape, run_cost

# numbers: learning rates, counts, seeds
T = TypeVar("T", bound=float)

BUILTIN_DATASETS = ("iris", "iris-uci")


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
        raise InputError(
            f"unknown dataset {name!r}: use one of {', '.join(BUILTIN_DATASETS)} or a path "
            "ending in .csv"
        )
    return name


LearningRate = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0)]
# A grid axis: several distinct values (on the command line, space-separated after its option).
LearningRates = CliVariadicArg[Annotated[tuple[LearningRate, ...], AfterValidator(_distinct)]]
Counts = CliVariadicArg[Annotated[tuple[Count, ...], AfterValidator(_distinct)]]
Seeds = CliVariadicArg[Annotated[tuple[Seed, ...], AfterValidator(_distinct)]]
DatasetName = Annotated[str, AfterValidator(check_dataset_name)]
# Q1's step: a number, or "auto" for a step from each matrix's spectrum (lab2.core.factorise)
GdLr = LearningRate | Literal["auto"]
Scaling = Literal["var", "std"]
ScalingRows = Literal["all", "train"]  # the rows the scaling's mean and spread are fitted on
Protocol = Literal["held-out", "seed-report"]

# The lab's grid (report, Q2_2).
LAB_LRS = (0.1, 0.01, 0.001)
LAB_ITERATIONS = (100, 1000)
LAB_SEEDS = (0, 1, 2)
METRICS = ("train_accuracy", "val_accuracy", "train_loss", "val_loss")  # what each MLP cell reports
# smallest val-accuracy difference worth detecting: one validation sample of Iris's 50
DEFAULT_MIN_EFFECT = 0.02
MinEffect = Annotated[
    float,
    Field(
        gt=0,
        allow_inf_nan=False,
        description=(
            "smallest val-accuracy difference worth detecting (one of Iris's 50 validation rows); "
            "lab2 says how many seeds it needs"
        ),
    ),
]


@dataclass(frozen=True)
class MLPSetup:
    """Everything that fixes an MLP cell besides its lr, iteration count and seed; the defaults are
    the lab's."""

    dataset: str = "iris"
    split_seed: int = 0
    hidden: int = 12
    scaling: Scaling = "var"
    protocol: Protocol = "held-out"
    scaling_rows: ScalingRows = "all"

    def as_params(self) -> dict[str, str | int]:
        return asdict(self)


@dataclass(frozen=True)
class FactorisationSetup:
    """Hyperparameters of the gradient-descent factorisation; the defaults are the lab's."""

    rank: int = 2
    lr: GdLr = 0.01
    epochs: int = 1000
    seed: int = 0

    def as_params(self) -> dict[str, float | int]:
        return asdict(self)


_LAB, _GD = MLPSetup(), FactorisationSetup()
TaskRunnerName = Literal["auto", "threads", "processes", "dask"]


# Parameters that change how a run runs (or whether it reuses), not its results.
EXECUTION_ONLY = ("force", "task_runner", "dask_address", "torch_threads")


class RunParams(BaseModel):
    """What every flow reads, and where it records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: DatasetName = Field(
        _LAB.dataset, description="iris (Fisher's, scikit-learn's copy), iris-uci, or PATH.csv"
    )
    label_column: str | None = Field(
        None, description="label column of a CSV dataset (default: its last column)"
    )
    experiment: str = Field("lab2", min_length=1, max_length=250, description="MLflow experiment")
    force: bool = Field(
        False,
        description="recompute every unit, even those with a FINISHED run of the same identity",
    )

    def check_data(self) -> list[str]:
        """Load the dataset and check that every stage of this flow can use it (each split seed of a
        grid); raises InputError saying why not. Returns what to know of the data (notes)."""
        # torch and scikit-learn: not needed to parse options
        from lab2.core.inputs import check_pipeline_inputs

        setups = (
            [self.mlp_setup(k) for k in self.split_seeds] if isinstance(self, GridParams) else []
        )
        rank = self.rank if isinstance(self, FactorisationParams) else None
        return check_pipeline_inputs(self.dataset, self.label_column, rank, setups)

    def check_size(self, available_bytes: int, cores: int, max_seconds: float) -> RunCost:
        """What this flow is expected to cost on a machine with `cores` cores; InputError if it
        needs more memory than `available_bytes` or longer than `max_seconds`, naming the
        estimate, the limit and how to go on."""
        n_trajectories, n_splits = 0, 0
        iterations: Sequence[int] = ()
        if isinstance(self, GridParams):
            n_trajectories = len(self.lrs) * len(self.seeds)
            iterations, n_splits = self.iterations, len(self.split_seeds)
        gd_epochs = self.gd_epochs if isinstance(self, FactorisationParams) else 0
        shape, hidden = (
            data_shape(self.dataset),
            self.hidden if isinstance(self, GridParams) else 12,
        )
        cost = run_cost(n_trajectories, iterations, n_splits, gd_epochs, cores, shape, hidden)
        grid_only = run_cost(n_trajectories, iterations, n_splits, 0, cores, shape, hidden)
        if cost.bytes > available_bytes:
            fewer = (
                "--iterations, --lrs or --seeds"
                if 2 * grid_only.bytes > cost.bytes
                else "--gd-epochs"
            )
            raise InputError(
                f"est. {_size(cost.bytes)} of memory, {_size(available_bytes)} free: use "
                f"fewer {fewer}"
            )
        if cost.seconds > max_seconds:
            fewer = (
                "--iterations, --lrs or --seeds"
                if 2 * grid_only.seconds > cost.seconds
                else "--gd-epochs"
            )
            raise InputError(
                f"est. {cost.seconds / 3600:,.0f} h, over "
                f"{env_name('max_hours')}={max_seconds / 3600:g}: use fewer {fewer}"
            )
        return cost


def _size(n_bytes: float) -> str:
    """Bytes for reading: "880 GB", "24.7 GB", "0.828 MB"."""
    return f"{n_bytes / 1e9:.3g} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.3g} MB"


class FactorisationParams(RunParams):
    """Q1: rank-r factorisation by gradient descent beside truncated SVD."""

    rank: int = Field(_GD.rank, ge=1, description="factorisation rank, 1 to min(rows, columns)")
    gd_lr: GdLr = Field(
        _GD.lr,
        description=(
            "factorisation learning rate, > 0, or auto: 0.25/σ₁ of each matrix (σ₁ its largest "
            "singular value), which suits data of any scale"
        ),
    )
    gd_epochs: int = Field(_GD.epochs, ge=1, description="factorisation epochs")
    gd_seed: int = Field(_GD.seed, ge=0, description="factorisation init seed")

    @property
    def gd_setup(self) -> FactorisationSetup:
        return FactorisationSetup(self.rank, self.gd_lr, self.gd_epochs, self.gd_seed)


class GridParams(RunParams):
    """Q2: the MLP grid over learning rates, iteration counts, init seeds and split seeds."""

    lrs: LearningRates = Field(LAB_LRS, description="MLP learning rates, each > 0, distinct")
    iterations: Counts = Field(
        LAB_ITERATIONS, description="MLP iteration counts, each ≥ 1, distinct"
    )
    seeds: Seeds = Field(LAB_SEEDS, description="MLP init seeds, each ≥ 0, distinct")
    split_seeds: Seeds = Field(
        (_LAB.split_seed,),
        description="seeds of the 100/50 train/validation shuffle; the grid runs on each",
    )
    hidden: int = Field(_LAB.hidden, ge=1, le=4096, description="MLP hidden units")
    scaling: Scaling = Field(
        _LAB.scaling, description="feature scaling: var (the lab's (x-mean)/var) or std"
    )
    scaling_rows: ScalingRows = Field(
        _LAB.scaling_rows,
        description=(
            "rows the scaling's mean and spread are fitted on: all (the lab's, as the report did) "
            "or train (the training rows only, so validation rows stay unseen)"
        ),
    )
    protocol: Protocol = Field(
        _LAB.protocol,
        description="held-out (the design's recipe) or seed-report (the report's procedure)",
    )
    cell_figures: bool = Field(
        True, description="the learning-curve figure of each MLP cell (skip it for large sweeps)"
    )
    torch_threads: int = Field(
        1,
        ge=1,
        le=256,
        description="torch intra-op threads per grid shard (1 suits these tiny tensors)",
    )
    min_effect: MinEffect = DEFAULT_MIN_EFFECT
    task_runner: TaskRunnerName = Field(
        "auto",
        description=(
            "where the grid's shards and their recording run: auto (threads, or processes from "
            "200 cells), threads, processes or dask"
        ),
    )
    dask_address: str | None = Field(
        None,
        description=(
            "scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (default: a local "
            "cluster)"
        ),
    )

    def mlp_setup(self, split_seed: int) -> MLPSetup:
        """The setup of every cell on one split seed."""
        return MLPSetup(
            self.dataset, split_seed, self.hidden, self.scaling, self.protocol, self.scaling_rows
        )

    @property
    def n_cells(self) -> int:
        return len(self.lrs) * len(self.iterations) * len(self.seeds) * len(self.split_seeds)


class Lab2Params(GridParams, FactorisationParams):
    """The whole lab: Q1's and Q2's parameters, and whether to write the lab's report."""

    report: bool = Field(
        True, description="the lab's report (report.md, report.html) on the parent run"
    )

    def run_key(self) -> str:
        """The identity of this whole run (lab2.core.identity.run_key): every parameter but those
        that change how it runs, not what it finds."""
        from lab2.core.identity import data_file, run_key

        return run_key(self.model_dump(exclude=set(EXECUTION_ONLY)), data_file(self.dataset))

    def params_key(self) -> str:
        """This run's axes and setup, hashed (not its data, code or environment): the runs a watch
        compares."""
        from lab2.core.identity import params_key

        return params_key(self.model_dump(exclude={*EXECUTION_ONLY, "report"}))

    @property
    def factorisation(self) -> FactorisationParams:
        return FactorisationParams(**self.model_dump(include=set(FactorisationParams.model_fields)))

    @property
    def grid(self) -> GridParams:
        return GridParams(**self.model_dump(include=set(GridParams.model_fields)))
