"""Prefect flows of lab2: `factorisation` (Q1), `mlp_grid` (Q2) and `lab2` (both)."""

from lab2.tasks import prefect_defaults

prefect_defaults()  # before the flows import Prefect
