"""The lab's MLP (features → hidden → classes, ReLU, cross-entropy) trained by full-batch gradient
descent.

Full-batch gradient descent is deterministic, so a run of k iterations is the first k steps of a
longer run with the same lr and seed: each (lr, seed) trajectory trains once, for the largest
iteration count, and every shorter count is read off at its step. All trajectories train together
as one batched program (stacked weights, batched matmul, one learning rate per trajectory).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd
import torch
import torch.nn.functional as F

from lab2.core.data import (
    Dataset,
    check_split_classes,
    scale,
    scaling_statistics,
    split_rows,
)
from lab2.core.params import Protocol, Scaling, ScalingRows
from lab2.core.workload import curve_steps

# how often training asks whether to stop: a few ms of steps, up to a second for huge shards
STOP_CHECK_STEPS = 50


class Stopped(BaseException):
    """Training was asked to stop (Ctrl-C, SIGTERM, a cancel); a BaseException, so that no `except
    Exception` keeps it going."""


@dataclass(frozen=True)
class MLPData:
    """Scaled float32 features and labels of the training and validation parts; the validation
    rows' place in the dataset and the scaling's statistics (float64, per feature), where known."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    val_index: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    spread: torch.Tensor | None = None

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max())) + 1

    @property
    def val_rows(self) -> int:
        return len(self.y_val)


@dataclass(frozen=True)
class MLPWeights:
    """w1 (features×hidden), b1 (hidden), w2 (hidden×classes), b2 (classes); a leading trajectory
    axis when stacked."""

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        return (self.w1, self.b1, self.w2, self.b2)


@dataclass(frozen=True)
class CellResult:
    """One grid cell: an (lr, seed) trajectory read off after `iterations` steps."""

    lr: float
    iterations: int
    seed: int
    train_accuracy: float
    val_accuracy: float
    train_loss: float
    val_loss: float
    # step → loss before it, on the steps of curve_steps(iterations)
    train_loss_history: dict[int, float]
    diverged: bool
    weights: MLPWeights
    # per validation row, in order: "1" where the prediction hits the label, else "0"
    val_correct: str = ""


def prepare_mlp_data(
    dataset: Dataset,
    split_seed: int = 0,
    scaling: Scaling = "var",
    protocol: Protocol = "held-out",
    scaling_rows: ScalingRows = "all",
) -> MLPData:
    """Split the rows, shuffled with `split_seed` (held-out) or in file order as the report did
    (seed-report: the first 2/3 train, the rest "validate"), and scale them with the statistics of
    all rows (the lab's) or of the training rows. Computed once per process for the same data and
    setup."""
    key = (dataset.digest, split_seed, scaling, protocol, scaling_rows)
    if key not in _PREPARED:
        _PREPARED[key] = _prepare(dataset, split_seed, scaling, protocol, scaling_rows)
    return _PREPARED[key]


_PREPARED: dict[tuple[str, int, str, str, str], MLPData] = {}


def _prepare(
    dataset: Dataset,
    split_seed: int,
    scaling: Scaling,
    protocol: Protocol,
    scaling_rows: ScalingRows,
) -> MLPData:
    split = split_rows(len(dataset.features), split_seed, shuffle=protocol == "held-out")
    fitted_on = dataset.features if scaling_rows == "all" else dataset.features[split.train]
    x = scale(dataset.features, scaling, fitted_on).to(torch.float32)
    mean, spread = scaling_statistics(fitted_on, scaling)  # what a served model scales by
    # The report's file-order split trains without the third species: seed-report reproduces that on
    # purpose.
    check_split_classes(
        dataset.labels,
        split,
        dataset.class_names,
        split_seed,
        need_all_in_training=protocol == "held-out",
    )
    return MLPData(
        x[split.train],
        dataset.labels[split.train],
        x[split.val],
        dataset.labels[split.val],
        split.val,
        mean,
        spread,
    )


def init_mlp(
    seed: int, n_features: int = 4, hidden: int = 12, n_classes: int = 3, scalar_bias: bool = False
) -> MLPWeights:
    """The lab's init: W1 then W2 uniform [0, 1) from a generator seeded with `seed`; zero biases
    (one per unit, or one scalar per layer as in the report's code)."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.rand(n_features, hidden, generator=g)
    w2 = torch.rand(hidden, n_classes, generator=g)
    return MLPWeights(
        w1,
        torch.zeros(1 if scalar_bias else hidden),
        w2,
        torch.zeros(1 if scalar_bias else n_classes),
    )


def forward(weights: MLPWeights, x: torch.Tensor) -> torch.Tensor:
    """Logits relu(x W1 + b1) W2 + b2; batched over a leading trajectory axis of the weights."""
    w1, b1, w2, b2 = weights.as_tuple()
    if w1.dim() == 3:
        b1, b2 = b1.unsqueeze(1), b2.unsqueeze(1)
    return torch.relu(x @ w1 + b1) @ w2 + b2


def train_cell_loop(
    data: MLPData, lr: float, iterations: int, seed: int, hidden: int = 12
) -> CellResult:
    """The lab's own loop (report, Appendix C), one cell one step at a time: the batched engine's
    reference and baseline."""
    w1, b1, w2, b2 = (
        p.clone().requires_grad_()
        for p in init_mlp(seed, data.n_features, hidden, data.n_classes).as_tuple()
    )
    history = []
    for _ in range(iterations):
        loss = F.cross_entropy(torch.relu(data.x_train @ w1 + b1) @ w2 + b2, data.y_train)
        history.append(loss.item())
        loss.backward()
        with torch.no_grad():
            for p in (w1, b1, w2, b2):
                assert p.grad is not None  # backward() has just filled it
                p -= p.grad * lr
                p.grad = None
    weights = MLPWeights(w1.detach(), b1.detach(), w2.detach(), b2.detach())
    batched = MLPWeights(*(p.unsqueeze(0) for p in weights.as_tuple()))
    (cell,) = _read_off(
        data, [(lr, seed)], batched, torch.tensor([history]), range(iterations), iterations
    )
    return cell


def train_cells(
    data: MLPData,
    trajectories: Sequence[tuple[float, int]],
    iterations: Sequence[int],
    hidden: int = 12,
    protocol: Protocol = "held-out",
    should_stop: Callable[[], bool] | None = None,
) -> list[CellResult]:
    """One result per (lr, seed) trajectory × iteration count under `protocol`.

    held-out: the design's recipe, validation rows never trained on. seed-report: the report's
    procedure, scalar biases and a "validation" accuracy measured on a second model trained on
    the validation rows themselves. Raises Stopped once `should_stop()` says so (asked every
    STOP_CHECK_STEPS steps).
    """
    if protocol == "held-out":
        return train_trajectories(data, trajectories, iterations, hidden, should_stop=should_stop)
    on_train = train_trajectories(
        data, trajectories, iterations, hidden, scalar_bias=True, should_stop=should_stop
    )
    val_as_train = MLPData(data.x_val, data.y_val, data.x_val, data.y_val)
    on_val = train_trajectories(
        val_as_train,
        trajectories,
        iterations,
        hidden,
        scalar_bias=True,
        n_classes=data.n_classes,
        should_stop=should_stop,
    )
    return [
        replace(
            t,
            val_accuracy=v.train_accuracy,
            val_loss=v.train_loss,
            val_correct=v.val_correct,
            diverged=t.diverged or v.diverged,
        )
        for t, v in zip(on_train, on_val, strict=True)
    ]


def train_trajectories(
    data: MLPData,
    trajectories: Sequence[tuple[float, int]],
    iterations: Sequence[int],
    hidden: int = 12,
    scalar_bias: bool = False,
    n_classes: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[CellResult]:
    """Train every (lr, seed) trajectory for max(iterations) steps; return one result per trajectory
    × count. Raises Stopped once `should_stop()` says so (asked every STOP_CHECK_STEPS steps)."""
    checkpoints = sorted(set(iterations))
    n_out = n_classes or data.n_classes
    inits = [
        init_mlp(seed, data.n_features, hidden, n_out, scalar_bias) for _, seed in trajectories
    ]
    w1, b1, w2, b2 = (torch.stack(p) for p in zip(*(w.as_tuple() for w in inits), strict=False))
    # Biases carry a row axis so that every step broadcasts without reshaping.
    params = [
        w1.requires_grad_(),
        b1.unsqueeze(1).requires_grad_(),
        w2.requires_grad_(),
        b2.unsqueeze(1).requires_grad_(),
    ]
    lrs = torch.tensor([lr for lr, _ in trajectories], dtype=torch.float32).view(-1, 1, 1)
    ones = torch.ones(len(trajectories))
    # memory grows with the points kept, not the steps
    needed = set().union(*(curve_steps(it) for it in checkpoints))
    kept: list[int] = []
    history: list[torch.Tensor] = []
    results: list[CellResult] = []
    for step in range(1, checkpoints[-1] + 1):
        if should_stop is not None and step % STOP_CHECK_STEPS == 0 and should_stop():
            raise Stopped(f"stopped at step {step} of {checkpoints[-1]}")
        w1, b1, w2, b2 = params
        logits = torch.relu(data.x_train @ w1 + b1) @ w2 + b2
        losses = _mean_cross_entropy(logits, data.y_train)
        if step - 1 in needed:
            kept.append(step - 1)
            history.append(losses.detach())
        # ∂(Σ_t J_t)/∂p: each trajectory's own gradient
        grads = torch.autograd.grad(losses, params, ones)
        with torch.no_grad():
            for p, grad in zip(params, grads, strict=True):
                p -= grad * lrs
        if step in checkpoints:
            weights = MLPWeights(
                w1.detach(), b1.detach().squeeze(1), w2.detach(), b2.detach().squeeze(1)
            )
            results += _read_off(
                data, trajectories, weights, torch.stack(history, dim=1), kept, step
            )
    return results


CELL_COLUMNS = [
    "lr",
    "iterations",
    "seed",
    "train_accuracy",
    "val_accuracy",
    "train_loss",
    "val_loss",
    "diverged",
    "val_correct",
]


def results_frame(
    results: Sequence[CellResult], known_rows: Sequence[Mapping[str, object]] = ()
) -> pd.DataFrame:
    """One row per cell (computed results, then rows already known): sorted like the lab's table."""
    rows = [{c: getattr(r, c) for c in CELL_COLUMNS} for r in results] + [
        {c: row[c] for c in CELL_COLUMNS} for row in known_rows
    ]
    frame = pd.DataFrame(rows, columns=CELL_COLUMNS)
    return frame.sort_values(
        ["iterations", "lr", "seed"], ascending=[True, False, True], ignore_index=True
    )


def splits_frame(frames: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """The cells of every split seed in one table (a split_seed column after the seed), sorted like
    the lab's table."""
    columns = [*CELL_COLUMNS[:3], "split_seed", *CELL_COLUMNS[3:]]
    frame = pd.concat([f.assign(split_seed=k) for k, f in frames.items()], ignore_index=True)[
        columns
    ]
    order = ["iterations", "lr", "split_seed", "seed"]
    return frame.sort_values(order, ascending=[True, False, True, True], ignore_index=True)


def histories_frame(results: Sequence[CellResult]) -> pd.DataFrame:
    """Training-loss curves in long form (lr, seed, step, loss), from each trajectory's longest
    cell."""
    longest: dict[tuple[float, int], CellResult] = {}
    for r in results:
        if (
            r.iterations > longest.get((r.lr, r.seed), r).iterations
            or (r.lr, r.seed) not in longest
        ):
            longest[(r.lr, r.seed)] = r
    return pd.DataFrame(
        [
            {"lr": r.lr, "seed": r.seed, "step": step, "loss": loss}
            for r in longest.values()
            for step, loss in r.train_loss_history.items()
        ],
        columns=["lr", "seed", "step", "loss"],
    )


def hits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row, whether the argmax hits the label; batched over a leading axis (its mean is the
    accuracy, 0–1)."""
    return logits.argmax(dim=-1) == labels


def _mean_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over rows (logits: trajectories × rows × classes), one value per
    trajectory."""
    per_row = F.cross_entropy(
        logits.transpose(1, 2), labels.expand(logits.shape[0], -1), reduction="none"
    )
    return per_row.mean(dim=1)


def _read_off(
    data: MLPData,
    trajectories: Sequence[tuple[float, int]],
    weights: MLPWeights,
    history: torch.Tensor,
    kept: Sequence[int],
    iterations: int,
) -> list[CellResult]:
    steps = curve_steps(iterations)
    wanted = set(steps)
    curve = history[:, [k for k, step in enumerate(kept) if step in wanted]]
    with torch.no_grad():
        train_logits = forward(weights, data.x_train)
        val_logits = forward(weights, data.x_val)
        val_hits = hits(val_logits, data.y_val)
        train_acc, val_acc = (
            hits(train_logits, data.y_train).double().mean(dim=-1),
            val_hits.double().mean(dim=-1),
        )
        train_loss = _mean_cross_entropy(train_logits, data.y_train)
        val_loss = _mean_cross_entropy(val_logits, data.y_val)
    finite = (
        torch.isfinite(curve).all(dim=1) & torch.isfinite(train_loss) & torch.isfinite(val_loss)
    )
    return [
        CellResult(
            lr=lr,
            iterations=iterations,
            seed=seed,
            train_accuracy=train_acc[t].item(),
            val_accuracy=val_acc[t].item(),
            train_loss=train_loss[t].item(),
            val_loss=val_loss[t].item(),
            train_loss_history=dict(zip(steps, curve[t].tolist(), strict=True)),
            diverged=not finite[t].item(),
            weights=MLPWeights(*(p[t].clone() for p in weights.as_tuple())),
            val_correct="".join("1" if hit else "0" for hit in val_hits[t].tolist()),
        )
        for t, (lr, seed) in enumerate(trajectories)
    ]


def served_model(weights: MLPWeights, data: MLPData, dataset: Dataset) -> dict[str, object]:
    """A trained cell as a model of raw rows, JSON-ready: the dataset's feature columns, label name
    and class names, the scaling's statistics and the weights (one bias per unit)."""
    if data.mean is None or data.spread is None:
        raise ValueError("the cell's data carries no scaling statistics")
    hidden, n_classes = weights.w1.shape[1], weights.w2.shape[1]
    return {
        "columns": dataset.columns(),
        "label": dataset.label_name,
        "classes": list(dataset.class_names),
        "mean": data.mean.tolist(),
        "spread": data.spread.tolist(),
        "w1": weights.w1.tolist(),
        "b1": weights.b1.expand(hidden).tolist(),
        "w2": weights.w2.tolist(),
        "b2": weights.b2.expand(n_classes).tolist(),
    }
