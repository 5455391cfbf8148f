"""The lab's MLP (features → hidden → classes, ReLU, cross-entropy) trained by full-batch gradient descent.

Full-batch gradient descent is deterministic, so a run of k iterations is the first k steps of a
longer run with the same lr and seed: each (lr, seed) trajectory trains once, for the largest
iteration count, and every shorter count is read off at its step. All trajectories train together
as one batched program (stacked weights, batched matmul, one learning rate per trajectory).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from lab2core.data import Dataset, Scaling, scale, split_rows


@dataclass(frozen=True)
class MLPData:
    """Scaled float32 features and labels of the training and validation parts."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max())) + 1


@dataclass(frozen=True)
class MLPWeights:
    """w1 (features×hidden), b1 (hidden), w2 (hidden×classes), b2 (classes); a leading trajectory axis when stacked."""

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
    train_loss_history: tuple[float, ...]  # loss before each step, one value per step
    diverged: bool
    weights: MLPWeights


def prepare_mlp_data(dataset: Dataset, split_seed: int = 0, scaling: Scaling = "var") -> MLPData:
    """Scale all rows with the lab's statistics, then split them with `split_seed`."""
    x = scale(dataset.features, scaling).to(torch.float32)
    split = split_rows(len(x), split_seed)
    return MLPData(x[split.train], dataset.labels[split.train], x[split.val], dataset.labels[split.val])


def init_mlp(seed: int, n_features: int = 4, hidden: int = 12, n_classes: int = 3) -> MLPWeights:
    """The lab's init: W1 then W2 uniform [0, 1) from a generator seeded with `seed`; zero biases."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.rand(n_features, hidden, generator=g)
    w2 = torch.rand(hidden, n_classes, generator=g)
    return MLPWeights(w1, torch.zeros(hidden), w2, torch.zeros(n_classes))


def forward(weights: MLPWeights, x: torch.Tensor) -> torch.Tensor:
    """Logits relu(x W1 + b1) W2 + b2; batched over a leading trajectory axis of the weights."""
    w1, b1, w2, b2 = weights.as_tuple()
    if w1.dim() == 3:
        b1, b2 = b1.unsqueeze(1), b2.unsqueeze(1)
    return torch.relu(x @ w1 + b1) @ w2 + b2


def train_trajectories(
    data: MLPData,
    trajectories: Sequence[tuple[float, int]],
    iterations: Sequence[int],
    hidden: int = 12,
) -> list[CellResult]:
    """Train every (lr, seed) trajectory for max(iterations) steps; return one result per trajectory × count."""
    checkpoints = sorted(set(iterations))
    n_steps = checkpoints[-1]
    inits = [init_mlp(seed, data.n_features, hidden, data.n_classes) for _, seed in trajectories]
    params = [torch.stack(p).requires_grad_() for p in zip(*(w.as_tuple() for w in inits))]
    lrs = torch.tensor([lr for lr, _ in trajectories], dtype=torch.float32)
    lr_per_param = [lrs.view(-1, *([1] * (p.dim() - 1))) for p in params]
    history = torch.empty(len(trajectories), n_steps)
    results: list[CellResult] = []
    for step in range(n_steps):
        losses = _mean_cross_entropy(forward(MLPWeights(*params), data.x_train), data.y_train)
        history[:, step] = losses.detach()
        grads = torch.autograd.grad(losses.sum(), params)
        with torch.no_grad():
            for p, grad, lr in zip(params, grads, lr_per_param):
                p -= grad * lr
        if step + 1 in checkpoints:
            results += _read_off(data, trajectories, MLPWeights(*(p.detach() for p in params)), history, step + 1)
    return results


def split_trajectories(lrs: Sequence[float], seeds: Sequence[int], n_shards: int) -> list[list[tuple[float, int]]]:
    """Every (lr, seed) pair, dealt into at most `n_shards` near-equal contiguous shards."""
    return deal_shards([(lr, seed) for lr in lrs for seed in seeds], n_shards)


def deal_shards(pairs: Sequence[tuple[float, int]], n_shards: int) -> list[list[tuple[float, int]]]:
    """`pairs` dealt in order into at most `n_shards` near-equal contiguous shards (none if no pairs)."""
    if not pairs:
        return []
    n_shards = max(1, min(n_shards, len(pairs)))
    size, extra = divmod(len(pairs), n_shards)
    bounds = [k * size + min(k, extra) for k in range(n_shards + 1)]
    return [list(pairs[bounds[k] : bounds[k + 1]]) for k in range(n_shards)]


def missing_trajectories(
    lrs: Sequence[float], iterations: Sequence[int], seeds: Sequence[int], done: Collection[tuple[float, int, int]]
) -> list[tuple[float, int]]:
    """The (lr, seed) trajectories with at least one (lr, iterations, seed) cell not in `done`, in grid order."""
    return [(lr, seed) for lr in lrs for seed in seeds if any((lr, it, seed) not in done for it in iterations)]


CELL_COLUMNS = ["lr", "iterations", "seed", "train_accuracy", "val_accuracy", "train_loss", "val_loss", "diverged"]


def results_frame(results: Sequence[CellResult], known_rows: Sequence[Mapping[str, object]] = ()) -> pd.DataFrame:
    """One row per cell (computed results, then rows already known): sorted like the lab's table."""
    rows = [{c: getattr(r, c) for c in CELL_COLUMNS} for r in results] + [{c: row[c] for c in CELL_COLUMNS} for row in known_rows]
    frame = pd.DataFrame(rows, columns=CELL_COLUMNS)
    return frame.sort_values(["iterations", "lr", "seed"], ascending=[True, False, True], ignore_index=True)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction (0–1) of rows whose argmax hits the label; batched over a leading axis."""
    return (logits.argmax(dim=-1) == labels).to(torch.float64).mean(dim=-1)


def _mean_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over rows, one value per trajectory."""
    n_traj, n_rows, n_classes = logits.shape
    per_row = F.cross_entropy(logits.reshape(-1, n_classes), labels.repeat(n_traj), reduction="none")
    return per_row.view(n_traj, n_rows).mean(dim=1)


def _read_off(
    data: MLPData,
    trajectories: Sequence[tuple[float, int]],
    weights: MLPWeights,
    history: torch.Tensor,
    iterations: int,
) -> list[CellResult]:
    with torch.no_grad():
        train_logits = forward(weights, data.x_train)
        val_logits = forward(weights, data.x_val)
        train_acc, val_acc = accuracy(train_logits, data.y_train), accuracy(val_logits, data.y_val)
        train_loss = _mean_cross_entropy(train_logits, data.y_train)
        val_loss = _mean_cross_entropy(val_logits, data.y_val)
    finite = torch.isfinite(history[:, :iterations]).all(dim=1) & torch.isfinite(train_loss) & torch.isfinite(val_loss)
    return [
        CellResult(
            lr=lr,
            iterations=iterations,
            seed=seed,
            train_accuracy=train_acc[t].item(),
            val_accuracy=val_acc[t].item(),
            train_loss=train_loss[t].item(),
            val_loss=val_loss[t].item(),
            train_loss_history=tuple(history[t, :iterations].tolist()),
            diverged=not finite[t].item(),
            weights=MLPWeights(*(p[t].clone() for p in weights.as_tuple())),
        )
        for t, (lr, seed) in enumerate(trajectories)
    ]
