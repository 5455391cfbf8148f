"""Low-rank factorisation A ≈ U Vᵀ: gradient descent with autograd, and the truncated-SVD
optimum."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch

from lab2.core.errors import InputError
from lab2.core.params import GdLr


@dataclass(frozen=True)
class Factorisation:
    """Factors with A ≈ U Vᵀ, the final loss ‖A − UVᵀ‖²_F; for GD also the loss before each epoch
    and the step it took. A GD whose loss stops being finite ends there: diverged."""

    u: torch.Tensor
    v: torch.Tensor
    loss: float
    loss_history: tuple[float, ...] = ()
    lr: float = math.nan  # GD's step (none for SVD)

    @property
    def diverged(self) -> bool:
        return not math.isfinite(self.loss)


def reconstruction_loss(a: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius norm ‖A − UVᵀ‖²_F (a sum, as in the lab)."""
    return ((a - u @ v.T) ** 2).sum()


def factorise_gd(
    a: torch.Tensor, rank: int, lr: GdLr = 0.01, epochs: int = 1000, seed: int = 0
) -> Factorisation:
    """Minimise ‖A − UVᵀ‖²_F over U (m×rank), V (n×rank) by full-batch gradient descent with
    autograd; stops at the first loss that is not finite (diverged)."""
    step = step_size(a, lr)
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(a.shape[0], rank, generator=g).to(a.dtype).requires_grad_()
    v = torch.rand(a.shape[1], rank, generator=g).to(a.dtype).requires_grad_()
    history = torch.empty(epochs, dtype=a.dtype)
    for epoch in range(epochs):
        loss = reconstruction_loss(a, u, v)
        history[epoch] = loss.detach()
        if not torch.isfinite(loss):
            return Factorisation(
                u.detach(), v.detach(), loss.item(), tuple(history[: epoch + 1].tolist()), step
            )
        u_grad, v_grad = torch.autograd.grad(loss, (u, v))
        with torch.no_grad():
            u -= step * u_grad
            v -= step * v_grad
    u, v = u.detach(), v.detach()
    final = reconstruction_loss(a, u, v).item()
    return Factorisation(u, v, final, tuple(history.tolist()), step)


# A step of STABLE_STEP / σ₁ (σ₁ the matrix's largest singular value) reaches the rank's optimum
# within 1e-5 of its loss in the lab's 1,000 epochs on the lab's matrix, centred Iris, wine,
# breast cancer and digits, whose σ₁ run from 5 to 16,000; twice that step oscillates or diverges
# on some of them.
STABLE_STEP = 0.25
# GD's loss more than this fraction above the SVD optimum's: not converged
CONVERGED_WITHIN = 0.01


def stable_lr(a: torch.Tensor) -> float:
    """A gradient-descent step for factorising `a` that scales with its data: STABLE_STEP / σ₁."""
    largest = torch.linalg.matrix_norm(a.to(torch.float64), ord=2).item()
    return STABLE_STEP / largest if largest > 0 else 1.0


def step_size(a: torch.Tensor, lr: GdLr) -> float:
    """The step GD takes on `a`: `lr`, or stable_lr(a) for "auto"."""
    return stable_lr(a) if lr == "auto" else lr


def optimum_gap(gd_loss: float, svd_loss: float) -> float:
    """How far GD's loss ends above the SVD optimum's, as a fraction of it (0 for an exact fit
    reached; inf for a GD whose loss is not finite or that misses an optimum of 0)."""
    if not math.isfinite(gd_loss):
        return math.inf
    if svd_loss == 0:
        return 0.0 if gd_loss == 0 else math.inf
    return max(gd_loss - svd_loss, 0.0) / svd_loss


GdOutcome = Literal["converged", "not converged", "diverged"]


def gd_outcome(gd_loss: float, svd_loss: float) -> GdOutcome:
    """GD's end in words: its loss not finite (diverged), within CONVERGED_WITHIN of the optimum's
    (converged), or further above it."""
    if not math.isfinite(gd_loss):
        return "diverged"
    return "converged" if optimum_gap(gd_loss, svd_loss) <= CONVERGED_WITHIN else "not converged"


def q1_row(
    name: str,
    matrix: torch.Tensor,
    lr: float,
    gd_loss: float,
    svd_loss: float,
    angles: Mapping[str, float],
) -> dict[str, object]:
    """A row of Q1's table: the matrix, GD's step, both losses, GD's gap to the optimum (a fraction)
    and its outcome, the matrix's stable step, the angles between the U's (GD's loss and gap NaN,
    no angles, when diverged)."""
    gap = optimum_gap(gd_loss, svd_loss)
    return {
        "matrix": name,
        "gd_lr": lr,
        "gd_loss": gd_loss if math.isfinite(gd_loss) else math.nan,
        "svd_loss": svd_loss,
        "optimum_gap": gap if math.isfinite(gap) else math.nan,
        "gd": gd_outcome(gd_loss, svd_loss),
        "stable_lr": stable_lr(matrix),
        **angles,
    }


def truncated_svd(a: torch.Tensor, rank: int) -> Factorisation:
    """The Eckart–Young optimum of rank `rank`: U = U_k Σ_k, V = V_k, loss = Σ_{i>k} σ_i²."""
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    u_k = u[:, :rank] * s[:rank]
    v_k = vh[:rank].T
    return Factorisation(u_k, v_k, reconstruction_loss(a, u_k, v_k).item())


def principal_angles(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Principal angles (degrees, ascending) between the column spaces of x and y."""
    qx, _ = torch.linalg.qr(x.to(torch.float64))
    qy, _ = torch.linalg.qr(y.to(torch.float64))
    cosines = torch.linalg.svdvals(qx.T @ qy).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cosines))


def column_angles(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Angle (degrees, 0–90, sign ignored) between each column of x and the same column of y."""
    x, y = x.to(torch.float64), y.to(torch.float64)
    cosines = (x * y).sum(dim=0).abs() / (x.norm(dim=0) * y.norm(dim=0))
    return torch.rad2deg(torch.arccos(cosines.clamp(0.0, 1.0)))


def u_rows(
    u_svd: torch.Tensor, u_gd: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]
) -> pd.DataFrame:
    """Q1_3's points: each row's class and its first two U coordinates from SVD and from GD (0 past
    the rank)."""

    def column(u: torch.Tensor, k: int) -> list[float]:
        return u[:, k].tolist() if u.shape[1] > k else [0.0] * len(u)

    return pd.DataFrame(
        {
            "species": [class_names[k] for k in labels.tolist()],
            "svd_u1": column(u_svd, 0),
            "svd_u2": column(u_svd, 1),
            "gd_u1": column(u_gd, 0),
            "gd_u2": column(u_gd, 1),
        }
    )


def reconstruction_rows(a: torch.Tensor, gd: Factorisation, svd: Factorisation) -> pd.DataFrame:
    """Q1_1's matrices entry by entry: row, column, A, GD's UVᵀ and truncated SVD's (the rank's
    optimum)."""
    gd_product, svd_product = gd.u @ gd.v.T, svd.u @ svd.v.T
    rows, columns = a.shape
    return pd.DataFrame(
        [
            {
                "row": i,
                "column": j,
                "a": a[i, j].item(),
                "gd": gd_product[i, j].item(),
                "svd": svd_product[i, j].item(),
            }
            for i in range(rows)
            for j in range(columns)
        ]
    )


def check_rank(rank: int, matrices: Mapping[str, torch.Tensor]) -> None:
    """Raise InputError unless 1 ≤ rank ≤ min(rows, columns) of every matrix."""
    for name, matrix in matrices.items():
        limit = min(matrix.shape)
        if not 1 <= rank <= limit:
            raise InputError(
                f"rank {rank} does not fit {name} ({matrix.shape[0]}×{matrix.shape[1]}): "
                f"allowed 1 to {limit}"
            )
