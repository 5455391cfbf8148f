import pytest
import torch
import torch.nn.functional as F

from lab2.core.data import load_dataset, split_rows
from lab2.core.mlp import (
    MLPWeights,
    _mean_cross_entropy,
    forward,
    init_mlp,
    prepare_mlp_data,
    results_frame,
    train_cell_loop,
    train_trajectories,
)
from lab2.core.workload import curve_steps, deal_shards

DATA = prepare_mlp_data(load_dataset("iris"))


def reference_cell(lr: float, iterations: int, seed: int):
    """The recipe written out plainly, one model per cell, as in the lab's Appendix C."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.rand(4, 12, generator=g).requires_grad_()
    w2 = torch.rand(12, 3, generator=g).requires_grad_()
    b1, b2 = torch.zeros(12, requires_grad=True), torch.zeros(3, requires_grad=True)
    for _ in range(iterations):
        loss = F.cross_entropy(torch.relu(DATA.x_train @ w1 + b1) @ w2 + b2, DATA.y_train)
        loss.backward()
        with torch.no_grad():
            for p in (w1, b1, w2, b2):
                p -= lr * p.grad
                p.grad = None
    with torch.no_grad():

        def hit(x, y):
            return (torch.relu(x @ w1 + b1) @ w2 + b2).argmax(1).eq(y)

        val_hits = hit(DATA.x_val, DATA.y_val)
        train_acc, val_acc = (
            hit(DATA.x_train, DATA.y_train).sum().item() / len(DATA.y_train),
            val_hits.sum().item() / len(DATA.y_val),
        )
        return (w1, b1, w2, b2), train_acc, val_acc, "".join(str(int(h)) for h in val_hits)


def test_split_and_scaling_give_100_training_and_50_validation_rows():
    assert DATA.x_train.shape == (100, 4) and DATA.x_val.shape == (50, 4)
    assert DATA.x_train.dtype == torch.float32 and DATA.n_classes == 3


def test_init_follows_the_recipe():
    g = torch.Generator().manual_seed(3)
    w = init_mlp(3)
    assert torch.equal(w.w1, torch.rand(4, 12, generator=g)) and torch.equal(
        w.w2, torch.rand(12, 3, generator=g)
    )
    assert torch.equal(w.b1, torch.zeros(12)) and torch.equal(w.b2, torch.zeros(3))


@pytest.mark.parametrize(
    "lrs, iterations, seeds",
    [((0.1, 0.01, 0.001), (100, 1000), (0, 1, 2)), ((0.37, 0.005), (1, 17, 60), (11, 4))],
)
def test_batched_trajectories_equal_the_plain_per_cell_loop(lrs, iterations, seeds):
    results = train_trajectories(DATA, [(lr, s) for lr in lrs for s in seeds], iterations)
    assert len(results) == len(lrs) * len(iterations) * len(seeds)
    for cell in results:
        params, train_acc, val_acc, val_hits = reference_cell(cell.lr, cell.iterations, cell.seed)
        for ours, reference in zip(cell.weights.as_tuple(), params, strict=True):
            assert torch.allclose(ours, reference, atol=1e-6, rtol=0)
        assert cell.train_accuracy == train_acc and cell.val_accuracy == val_acc
        # the validation rows behind the accuracy
        assert cell.val_correct == val_hits and len(val_hits) == 50
        assert list(cell.train_loss_history) == curve_steps(cell.iterations) and not cell.diverged


def test_history_is_the_loss_before_each_step():
    (cell,) = train_trajectories(DATA, [(0.1, 0)], [1])
    w = init_mlp(0)
    first = F.cross_entropy(forward(w, DATA.x_train), DATA.y_train).item()
    assert cell.train_loss_history == {0: pytest.approx(first)}
    assert cell.train_loss < first


def test_mlp_gradient_agrees_with_finite_differences():
    w = init_mlp(0, hidden=5)
    params = tuple(p.double().unsqueeze(0).requires_grad_() for p in w.as_tuple())
    x, y = DATA.x_train[:20].double(), DATA.y_train[:20]

    def loss(*ps):
        return _mean_cross_entropy(forward(MLPWeights(*ps), x), y).sum()

    assert torch.autograd.gradcheck(loss, params, eps=1e-6, atol=1e-6)


def test_a_diverging_trajectory_is_flagged_and_does_not_spoil_the_others():
    results = train_trajectories(DATA, [(1e4, 0), (0.1, 0)], [50])
    by_lr = {r.lr: r for r in results}
    assert by_lr[1e4].diverged
    assert not by_lr[0.1].diverged
    (reference,) = train_trajectories(DATA, [(0.1, 0)], [50])
    assert by_lr[0.1].train_accuracy == reference.train_accuracy
    assert torch.equal(by_lr[0.1].weights.w1, reference.weights.w1)


def test_deal_shards_deals_every_pair_once():
    shards = deal_shards([(lr, s) for lr in [0.1, 0.01, 0.001] for s in [0, 1, 2]], n_shards=2)
    assert [len(s) for s in shards] == [5, 4]
    assert sorted(p for s in shards for p in s) == sorted(
        (lr, s) for lr in [0.1, 0.01, 0.001] for s in [0, 1, 2]
    )
    assert len(deal_shards([(0.1, 0)], n_shards=8)) == 1 and deal_shards([], n_shards=2) == []


def test_results_frame_orders_cells_like_the_lab_table():
    frame = results_frame(train_trajectories(DATA, [(0.01, 1), (0.1, 0)], [2, 1]))
    assert frame[["iterations", "lr", "seed"]].values.tolist() == [
        [1, 0.1, 0],
        [1, 0.01, 1],
        [2, 0.1, 0],
        [2, 0.01, 1],
    ]


def test_the_benchmarks_seed_style_loop_is_the_plain_recipe():
    cell = train_cell_loop(DATA, 0.05, 40, 3)
    params, train_acc, val_acc, _ = reference_cell(0.05, 40, 3)
    assert all(
        torch.equal(ours, ref) for ours, ref in zip(cell.weights.as_tuple(), params, strict=True)
    )
    assert (cell.train_accuracy, cell.val_accuracy) == (train_acc, val_acc)
    assert len(cell.train_loss_history) == 40


def test_training_asked_to_stop_raises_stopped_and_a_stop_never_asked_changes_nothing():
    from lab2.core.mlp import STOP_CHECK_STEPS, Stopped

    asked = []

    def stop_on_second_ask() -> bool:
        asked.append(1)
        return len(asked) == 2

    with pytest.raises(Stopped, match=f"step {2 * STOP_CHECK_STEPS} of 1000"):
        train_trajectories(DATA, [(0.1, 0), (0.01, 1)], [1000], should_stop=stop_on_second_ask)
    plain = train_trajectories(DATA, [(0.1, 0), (0.01, 1)], [120])
    polled = train_trajectories(DATA, [(0.1, 0), (0.01, 1)], [120], should_stop=lambda: False)
    assert [c.train_loss_history for c in plain] == [c.train_loss_history for c in polled]
    assert all(
        torch.equal(a, b)
        for p, q in zip(plain, polled, strict=True)
        for a, b in zip(p.weights.as_tuple(), q.weights.as_tuple(), strict=True)
    )


def test_a_long_cell_keeps_a_thinned_curve_that_is_the_full_curve_at_its_steps():
    from lab2.core.workload import CURVE_POINTS, curve_steps

    assert curve_steps(5) == [0, 1, 2, 3, 4] and curve_steps(CURVE_POINTS) == list(
        range(CURVE_POINTS)
    )
    every = -(-2501 // CURVE_POINTS)
    assert (
        curve_steps(2501) == [*range(0, 2501, every), 2500]
        and len(curve_steps(10**9)) == CURVE_POINTS + 1
    )
    short, long = train_trajectories(DATA, [(0.05, 1)], [700, 2500])
    full = train_cell_loop(DATA, 0.05, 2500, 1)  # every step, thinned at the end the same way
    assert list(long.train_loss_history) == curve_steps(2500) == list(full.train_loss_history)
    assert list(long.train_loss_history.values()) == pytest.approx(
        list(full.train_loss_history.values()), abs=1e-6
    )
    assert list(short.train_loss_history) == curve_steps(700)
    shared = set(short.train_loss_history) & set(long.train_loss_history)
    assert len(shared) > 1 and all(
        long.train_loss_history[s] == short.train_loss_history[s] for s in shared
    )


def test_the_scaling_can_be_fitted_on_the_training_rows_only():
    iris = load_dataset("iris")
    everything = prepare_mlp_data(iris, scaling="std")
    training = prepare_mlp_data(iris, scaling="std", scaling_rows="train")
    assert torch.allclose(
        training.x_train.double().mean(dim=0), torch.zeros(4, dtype=torch.float64), atol=1e-6
    )
    assert torch.allclose(
        training.x_train.double().std(dim=0), torch.ones(4, dtype=torch.float64), atol=1e-6
    )
    assert not torch.allclose(everything.x_val, training.x_val)
    assert torch.equal(everything.val_index, training.val_index)  # the same split
    # what a served model scales by: the training rows' statistics
    train_rows = split_rows(150, 0).train
    assert torch.allclose(training.mean, iris.features[train_rows].mean(dim=0))
