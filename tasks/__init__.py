"""Thin Prefect tasks: the lab's stages, what they hand to MLflow, and the features built on
them."""

import os


def prefect_defaults() -> None:
    """The Prefect settings every lab2 process runs with. Prefect reads its settings as it loads:
    lab2's entry points (this package, the flows, the CLI) set these before they import it."""
    # Tasks take tensors and datasets and hand their results to MLflow: none is cached.
    os.environ.setdefault("PREFECT_TASKS_DEFAULT_NO_CACHE", "true")


prefect_defaults()
