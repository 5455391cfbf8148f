"""Prefect's settings for lab2's tasks: no task caches its inputs (Prefect's default, set once)."""

import importlib
import pkgutil

import lab2.flows
import lab2.tasks  # before Prefect loads: this module imports Prefect inside its tests only


def test_every_task_of_lab2_runs_without_a_cache():
    from prefect import Task
    from prefect.cache_policies import NO_CACHE

    modules = [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for package in (lab2.tasks, lab2.flows)
        for info in pkgutil.iter_modules(package.__path__)
    ]
    tasks = [v for m in modules for v in vars(m).values() if isinstance(v, Task)]
    cached = [t.name for t in tasks if not isinstance(t.cache_policy, type(NO_CACHE))]
    assert len(tasks) >= 15 and cached == []
