"""Prefect flows of lab2: `factorisation` (Q1), `mlp_grid` (Q2) and `lab2` (both)."""
