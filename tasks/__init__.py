"""Thin Prefect tasks: call lab2core, add retries, hand results to tracking."""
