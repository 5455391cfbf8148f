"""The lab as a user would script it by hand: torch, MLflow's fluent API, matplotlib; no Prefect, no
lab2.

The yardstick `lab_benchmark.py` times `lab2 run` against. Same work as `lab2 run` on its
defaults: GD factorisation vs truncated SVD of the lab's 3x3 matrix and of centred Iris, the U
scatter, and the 18-cell MLP grid (a fresh model per cell, as the lab does), each unit a nested
MLflow run written with one `log_batch`, the same figures (U scatter, a learning curve per cell,
the grid summary).

python benchmarks/handwritten_lab.py      # logs to sqlite:///mlflow.db in the working directory
"""

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import torch  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402

LAB_MATRIX = [[0.3374, 0.6005, 0.1735], [3.3359, 0.0492, 1.8374], [2.9407, 0.5301, 2.2620]]


def log_batch(params: dict, metrics: dict, histories: dict | None = None) -> None:
    now = int(time.time() * 1000)
    rows = [
        Metric(k, float(v), now, len(h) if (h := (histories or {}).get(k)) else 0)
        for k, v in metrics.items()
    ]
    for key, values in (histories or {}).items():
        rows += [Metric(key, float(v), now, step) for step, v in enumerate(values)]
    mlflow.MlflowClient().log_batch(
        mlflow.active_run().info.run_id,
        metrics=rows,
        params=[Param(k, str(v)) for k, v in params.items()],
    )


def factorise(
    a: torch.Tensor, rank: int = 2, lr: float = 0.01, epochs: int = 1000
) -> tuple[torch.Tensor, list[float]]:
    g = torch.Generator().manual_seed(0)
    u = torch.rand(a.shape[0], rank, generator=g, requires_grad=True)
    v = torch.rand(a.shape[1], rank, generator=g, requires_grad=True)
    losses = []
    for _ in range(epochs):
        loss = ((a - u @ v.T) ** 2).sum()
        losses.append(loss.item())
        u.grad = v.grad = None
        loss.backward()
        with torch.no_grad():
            u -= lr * u.grad
            v -= lr * v.grad
    return u.detach(), losses + [((a - u @ v.T) ** 2).sum().item()]


def train_mlp(
    x_train, y_train, x_val, y_val, lr: float, iterations: int, seed: int
) -> tuple[dict, list[float]]:
    g = torch.Generator().manual_seed(seed)
    w1 = torch.rand(4, 12, generator=g).requires_grad_()
    w2 = torch.rand(12, 3, generator=g).requires_grad_()
    b1 = torch.zeros(12, requires_grad=True)
    b2 = torch.zeros(3, requires_grad=True)
    model = lambda x: torch.relu(x @ w1 + b1) @ w2 + b2  # noqa: E731
    losses = []
    for _ in range(iterations):
        loss = torch.nn.functional.cross_entropy(model(x_train), y_train)
        losses.append(loss.item())
        for p in (w1, w2, b1, b2):
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in (w1, w2, b1, b2):
                p -= lr * p.grad
    with torch.no_grad():
        metrics = {
            "train_accuracy": (model(x_train).argmax(1) == y_train).float().mean().item(),
            "val_accuracy": (model(x_val).argmax(1) == y_val).float().mean().item(),
            "train_loss": torch.nn.functional.cross_entropy(model(x_train), y_train).item(),
            "val_loss": torch.nn.functional.cross_entropy(model(x_val), y_val).item(),
        }
    return metrics, losses


def main() -> None:
    iris = load_iris()
    x = torch.tensor(iris.data, dtype=torch.float32)
    y = torch.tensor(iris.target)
    matrices = {"lab1-3x3": torch.tensor(LAB_MATRIX), "iris": x - x.mean(0)}
    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    mlflow.set_experiment("lab2-by-hand")
    with mlflow.start_run(run_name="lab2"):
        for name, a in matrices.items():
            with mlflow.start_run(run_name=f"gd-factorise {name}", nested=True):
                u_gd, losses = factorise(a)
                log_batch(
                    {"matrix": name, "rank": 2, "lr": 0.01, "epochs": 1000, "seed": 0},
                    {"loss": losses[-1]},
                    {"loss": losses[:-1]},
                )
            with mlflow.start_run(run_name=f"svd-baseline {name}", nested=True):
                u, s, _ = torch.linalg.svd(a, full_matrices=False)
                log_batch({"matrix": name, "rank": 2}, {"loss": (s[2:] ** 2).sum().item()})
                if name == "iris":
                    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
                    for ax, (title, us) in zip(
                        axes, [("SVD", u[:, :2] * s[:2]), ("GD", u_gd)], strict=False
                    ):
                        ax.scatter(us[:, 0], us[:, 1], c=y, cmap="viridis", s=12)
                        ax.set_title(f"U from {title}")
                    mlflow.log_figure(fig, "figures/u_scatter.png")
                    plt.close(fig)
        perm = torch.randperm(150, generator=torch.Generator().manual_seed(0))
        xs = (x - x.mean(0)) / x.var(0)
        train, val = perm[:100], perm[100:]
        results = []
        for iterations in (100, 1000):
            for lr in (0.1, 0.01, 0.001):
                for seed in (0, 1, 2):
                    with mlflow.start_run(
                        run_name=f"mlp lr={lr} it={iterations} seed={seed}", nested=True
                    ):
                        metrics, losses = train_mlp(
                            xs[train], y[train], xs[val], y[val], lr, iterations, seed
                        )
                        log_batch(
                            {"lr": lr, "iterations": iterations, "seed": seed, "hidden": 12},
                            metrics,
                            {"train_loss": losses},
                        )
                        fig, ax = plt.subplots(figsize=(5, 3.5))
                        ax.plot(losses)
                        ax.set(
                            xlabel="step",
                            ylabel="training loss",
                            title=f"lr={lr} it={iterations} seed={seed}",
                        )
                        mlflow.log_figure(fig, "figures/learning_curve.png")
                        plt.close(fig)
                        results.append((lr, iterations, seed, metrics["val_accuracy"]))
        fig, ax = plt.subplots(figsize=(6, 4))
        for iterations in (100, 1000):
            rows = [r for r in results if r[1] == iterations]
            ax.scatter([r[0] for r in rows], [r[3] for r in rows], label=f"{iterations} iterations")
        ax.set(xscale="log", xlabel="learning rate", ylabel="validation accuracy")
        ax.legend()
        mlflow.log_figure(fig, "figures/grid_summary.png")
        plt.close(fig)
    print(f"{len(results)} cells logged; best val accuracy {max(r[3] for r in results):.3f}")


if __name__ == "__main__":
    main()
