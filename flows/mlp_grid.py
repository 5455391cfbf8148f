"""Q2: train the lab's MLP on every (lr, iterations, seed) cell of a grid, for each split seed, and
track each cell."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from prefect import flow, get_run_logger

from lab2.core.describe import best_label, grid_sentence
from lab2.core.params import GridParams
from lab2.core.seeds import SeedComparison
from lab2.tasks.compute import check_inputs, compare_over_seeds, load_data, split_for_mlp
from lab2.tasks.figures import figure_process, grid_summary_pngs
from lab2.tasks.flow_run import pipeline_run
from lab2.tasks.grid import train_and_record
from lab2.tasks.outputs import Winner, describe_parent, log_winner, publish_grid
from lab2.tasks.resume import grid_units, plan_units, settle
from lab2.tasks.tracking import RunRecord


@dataclass(frozen=True)
class GridResult:
    """Q2's cells (over every split seed), their comparison over seeds, its units, the winner and
    what ran."""

    cells: pd.DataFrame
    seeds: SeedComparison
    units: pd.DataFrame
    winner: Winner
    what_ran: str


@flow(name="mlp-grid")
def mlp_grid(params: GridParams = GridParams()) -> GridResult:
    """Q2 on its own, under an MLflow parent run of its own."""
    check_inputs(params)
    with (
        figure_process(),
        pipeline_run(
            params.experiment, "mlp-grid", RunRecord(params=params.model_dump())
        ) as parent,
    ):
        q2 = train_grid(parent, params)
        describe_parent(parent, [q2.what_ran], q2.units, seeds=q2.seeds, winner=q2.winner)
        settle(parent)
    return q2


@flow(name="train-grid", validate_parameters=False)  # called with a validated model
def train_grid(parent_run_id: str, params: GridParams) -> GridResult:
    """Q2_1–Q2_2 under `parent_run_id`: load → split → plan → train → record cells → compare seeds →
    pick the winner → publish. Each (lr, seed) trajectory trains once, in batched shards on the
    grid's task runner; cells MLflow already holds are reused; groups are compared seed by seed."""
    data = load_data(params.dataset, params.label_column)
    splits = {k: split_for_mlp(data, params.mlp_setup(k)) for k in params.split_seeds}
    plan = plan_units(params.experiment, *grid_units(params, data.digest), params.force)
    # the figures are drawn there: the learning curves as the cells are logged, the summary beside
    # the model
    with figure_process():
        cells = train_and_record(parent_run_id, params, data, splits, plan)
        # the split whose cell is the winner's, and whose rows size the verdicts
        first = min(params.split_seeds)
        seeds = compare_over_seeds(cells.table, splits[first].val_rows, params.min_effect)
        summary_figures = grid_summary_pngs(cells.table, cells.curves, seeds)
        winner = log_winner(
            parent_run_id, seeds, cells, plan, params.mlp_setup(first), splits[first], data
        )
        units = plan.table(cells.written)
        publish_grid(
            parent_run_id,
            cells.table,
            summary_figures.result(),
            seeds,
            splits[first],
            units,
        )
    get_run_logger().info("Q2 grid: best %s, model %s", best_label(seeds), winner.model_uri)
    what_ran = grid_sentence(
        params.lrs,
        params.iterations,
        params.seeds,
        params.mlp_setup(first).as_params(),
        params.split_seeds,
    )
    return GridResult(cells.table, seeds, units, winner, what_ran)
