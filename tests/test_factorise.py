import math

import pytest
import torch
from sklearn import datasets

from lab2.core.data import LAB_MATRIX, centre, load_dataset
from lab2.core.errors import InputError
from lab2.core.factorise import (
    CONVERGED_WITHIN,
    check_rank,
    column_angles,
    factorise_gd,
    gd_outcome,
    optimum_gap,
    principal_angles,
    reconstruction_loss,
    stable_lr,
    truncated_svd,
)

LAB_OPTIMUM = 0.12191  # σ₃² of the lab's 3×3 matrix (Eckart–Young)


def _tail_energy(a: torch.Tensor, rank: int) -> float:
    return (torch.linalg.svdvals(a)[rank:] ** 2).sum().item()


@pytest.mark.parametrize(
    "shape, rank", [((3, 3), 1), ((3, 3), 2), ((7, 5), 3), ((20, 4), 2), ((4, 9), 4)]
)
def test_svd_loss_is_the_tail_energy_of_the_singular_values(shape, rank):
    a = torch.randn(*shape, generator=torch.Generator().manual_seed(rank), dtype=torch.float64)
    result = truncated_svd(a, rank)
    assert result.loss == pytest.approx(_tail_energy(a, rank), rel=1e-9, abs=1e-12)
    assert result.u.shape == (shape[0], rank) and result.v.shape == (shape[1], rank)


@pytest.mark.parametrize("dataset, expected", [("iris", 15.2046), ("iris-uci", 15.2288)])
def test_centred_iris_svd_loss_matches_the_reference(dataset, expected):
    a = centre(load_dataset(dataset).features)
    assert truncated_svd(a, 2).loss == pytest.approx(expected, abs=5e-5)


def test_gd_reaches_the_eckart_young_optimum_and_never_goes_below_it():
    optimum = _tail_energy(LAB_MATRIX.double(), 2)
    assert optimum == pytest.approx(LAB_OPTIMUM, abs=1e-5)
    result = factorise_gd(LAB_MATRIX, rank=2, lr=0.01, epochs=1000, seed=0)
    assert result.loss <= optimum * 1.005
    float32_slack = 1e-6 * optimum  # the lab's matrix is float32
    assert result.loss >= optimum - float32_slack
    assert min(result.loss_history) >= optimum - float32_slack
    assert len(result.loss_history) == 1000
    assert result.loss_history[0] > result.loss_history[-1]


def test_gd_on_centred_iris_is_close_to_svd():
    a = centre(load_dataset("iris-uci").features)
    gd, svd = factorise_gd(a, 2), truncated_svd(a, 2)
    assert svd.loss <= gd.loss <= svd.loss * 1.001
    assert gd.loss == pytest.approx(reconstruction_loss(a, gd.u, gd.v).item())


def test_gd_follows_the_seeded_init():
    a = LAB_MATRIX
    g = torch.Generator().manual_seed(5)
    u0, v0 = torch.rand(3, 2, generator=g), torch.rand(3, 2, generator=g)
    result = factorise_gd(a, rank=2, lr=0.01, epochs=1, seed=5)
    assert result.loss_history[0] == pytest.approx(reconstruction_loss(a, u0, v0).item())


def test_autograd_gradient_equals_the_analytic_gradient():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 4, generator=g, dtype=torch.float64)
    u = torch.rand(6, 2, generator=g, dtype=torch.float64).requires_grad_()
    v = torch.rand(4, 2, generator=g, dtype=torch.float64).requires_grad_()
    du, dv = torch.autograd.grad(reconstruction_loss(a, u, v), (u, v))
    residual = a - u.detach() @ v.detach().T
    assert torch.allclose(du, -2 * residual @ v.detach(), atol=1e-12)
    assert torch.allclose(dv, -2 * residual.T @ u.detach(), atol=1e-12)


def test_principal_angles_see_a_rotation_as_the_same_subspace():
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    theta = torch.tensor(0.7, dtype=torch.float64)
    rotation = torch.stack(
        [torch.stack([theta.cos(), -theta.sin()]), torch.stack([theta.sin(), theta.cos()])]
    )
    rotated = 3.0 * x @ rotation
    assert principal_angles(x, rotated).max().item() < 1e-5
    assert column_angles(x, rotated).max().item() > 1.0  # same plane, turned within it
    e = torch.eye(4, dtype=torch.float64)
    assert principal_angles(e[:, :2], e[:, 2:]).tolist() == pytest.approx([90.0, 90.0])


@pytest.mark.parametrize("rank", [0, 4, -1])
def test_rank_outside_the_matrix_is_refused(rank):
    with pytest.raises(InputError, match=f"rank {rank} does not fit lab1-3x3"):
        check_rank(rank, {"lab1-3x3": LAB_MATRIX})


def _centred(loader) -> torch.Tensor:
    return centre(torch.tensor(loader().data, dtype=torch.float32))


@pytest.mark.parametrize(
    "loader", [datasets.load_wine, datasets.load_breast_cancer, datasets.load_digits]
)
def test_the_lab_step_diverges_on_data_of_large_scale_and_the_stable_step_reaches_the_optimum(
    loader,
):
    a = _centred(loader)
    svd = truncated_svd(a, 2)
    assert optimum_gap(factorise_gd(a, 2, lr=0.01).loss, svd.loss) == math.inf
    stable = factorise_gd(a, 2, lr=stable_lr(a))
    assert optimum_gap(stable.loss, svd.loss) <= CONVERGED_WITHIN


def test_the_stable_step_is_a_quarter_over_the_largest_singular_value():
    a = centre(load_dataset("iris-uci").features)
    assert stable_lr(a) == pytest.approx(0.25 / torch.linalg.svdvals(a.double())[0].item())
    assert stable_lr(torch.zeros(3, 2)) == 1.0
    gd, svd = factorise_gd(a, 2, lr=stable_lr(a)), truncated_svd(a, 2)
    assert optimum_gap(gd.loss, svd.loss) <= CONVERGED_WITHIN


@pytest.mark.parametrize(
    "gd_loss, svd_loss, gap",
    [
        (float("nan"), 1.0, math.inf),
        (float("inf"), 1.0, math.inf),
        (0.0, 0.0, 0.0),
        (1e-9, 0.0, math.inf),
        (0.99, 1.0, 0.0),  # below the optimum only by float noise: no gap
        (1.5, 1.0, 0.5),
    ],
)
def test_the_optimum_gap_on_awkward_losses(gd_loss, svd_loss, gap):
    assert optimum_gap(gd_loss, svd_loss) == pytest.approx(gap)


@pytest.mark.parametrize(
    "gd_loss, svd_loss, outcome",
    [
        (float("nan"), 1.0, "diverged"),
        (float("inf"), 0.0, "diverged"),
        (1e-9, 0.0, "not converged"),  # an exact fit missed: not diverged
        (1.0099, 1.0, "converged"),  # just within the 1% bound
        (1.0101, 1.0, "not converged"),
        (0.0, 0.0, "converged"),
    ],
)
def test_the_outcome_of_gd_in_words(gd_loss, svd_loss, outcome):
    assert gd_outcome(gd_loss, svd_loss) == outcome


def test_gd_stops_at_the_first_loss_that_is_not_finite():
    a = _centred(datasets.load_wine)
    gd = factorise_gd(a, 2, lr=0.01, epochs=1000)
    assert gd.diverged
    assert 1 < len(gd.loss_history) < 1000
    assert all(math.isfinite(x) for x in gd.loss_history[:-1])
    assert not math.isfinite(gd.loss_history[-1])
    assert gd.lr == 0.01


def test_the_u_figure_says_diverged_where_gd_diverged_though_its_last_u_is_finite():
    from lab2.core.plots import plot_u_scatter

    wine = datasets.load_wine()
    a = _centred(datasets.load_wine)
    gd, svd = factorise_gd(a, 2, lr=0.01, epochs=1000), truncated_svd(a, 2)
    assert gd.diverged and torch.isfinite(gd.u).all()  # the last U before the loss overflowed
    figure = plot_u_scatter(svd.u.numpy(), None, wine.target, list(wine.target_names))
    svd_panel, gd_panel = figure.axes
    assert len(svd_panel.collections) == 3 and not gd_panel.collections
    assert [t.get_text() for t in gd_panel.texts] == ["diverged: loss not finite"]


def test_the_auto_step_is_the_stable_step_of_the_matrix():
    a = _centred(datasets.load_wine)
    auto, explicit = factorise_gd(a, 2, lr="auto", epochs=50), factorise_gd(a, 2, stable_lr(a), 50)
    assert auto.lr == stable_lr(a)
    assert auto.loss == explicit.loss
