"""The `lab2` command: run the pipeline on embedded defaults, with the lab's parameters as options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, get_type_hints

from pydantic import TypeAdapter, ValidationError

import pandas as pd

from lab2core.params import LAB_ITERATIONS, LAB_LRS, LAB_SEEDS, DatasetName, InputError, MLPSetup, Seeds, axis_param

if TYPE_CHECKING:
    import pandas as pd

EXIT_TRACKING_FAILED = 1
EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    return args.command(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab2", description="Lab 2 on PyTorch autograd as a Prefect pipeline tracked in MLflow.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the whole pipeline (Q1 factorisation, Q2 MLP grid)")
    run.set_defaults(command=_run)
    run.add_argument("--dataset", default="iris", help="iris (Fisher's, scikit-learn's copy), iris-uci, or PATH.csv (default: iris)")
    run.add_argument("--label-column", help="label column of a CSV dataset (default: its last column)")
    run.add_argument("--lrs", type=float, nargs="+", default=LAB_LRS, metavar="LR", help="MLP learning rates (default: 0.1 0.01 0.001)")
    run.add_argument("--iterations", type=int, nargs="+", default=LAB_ITERATIONS, metavar="N", help="MLP iteration counts (default: 100 1000)")
    run.add_argument("--seeds", type=int, nargs="+", default=LAB_SEEDS, metavar="SEED", help="MLP init seeds (default: 0 1 2)")
    run.add_argument("--split-seed", type=int, default=0, help="seed of the 100/50 train/validation shuffle (default: 0)")
    run.add_argument("--hidden", type=int, default=12, help="MLP hidden units (default: 12)")
    run.add_argument("--scaling", default="var", help="feature scaling: var (the lab's (x-mean)/var) or std (default: var)")
    run.add_argument("--rank", type=int, default=2, help="factorisation rank (default: 2)")
    run.add_argument("--gd-lr", type=float, default=0.01, help="factorisation learning rate (default: 0.01)")
    run.add_argument("--gd-epochs", type=int, default=1000, help="factorisation epochs (default: 1000)")
    run.add_argument("--gd-seed", type=int, default=0, help="factorisation init seed (default: 0)")
    run.add_argument("--no-cell-figures", dest="cell_figures", action="store_false", help="skip the learning-curve figure of each MLP cell (for large sweeps)")
    run.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads per grid shard (default: 1)")
    run.add_argument("--protocol", default="held-out", help="held-out (the design's recipe) or seed-report (the report's procedure)")
    run.add_argument("--experiment", default="lab2", help="MLflow experiment (default: lab2)")
    run.add_argument("--task-runner", default="threads", choices=("threads", "dask"), help="where the grid's shards run (default: threads)")
    run.add_argument("--force", action="store_true", help="recompute every unit, even those with a FINISHED run of the same identity")
    run.add_argument("--dask-address", help="scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (default: a local cluster)")

    compare = commands.add_parser("compare", help="seed table of a pipeline run (or two, side by side), read from MLflow")
    compare.set_defaults(command=_compare)
    compare.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="parent run id(s); default: the latest grid run")
    compare.add_argument("--experiment", default="lab2", help="MLflow experiment (default: lab2)")

    report = commands.add_parser("report", help="the report's numbers beside lab2's, under both protocols")
    report.set_defaults(command=_report)
    report.add_argument("--seeds", type=int, nargs="+", default=tuple(range(10)), metavar="SEED", help="seeds (default: 0 to 9)")
    report.add_argument("--dataset", default="iris-uci", help="dataset (default: iris-uci, the report's copy)")
    _add_stack_parser(commands)
    return parser


def _add_stack_parser(commands: argparse._SubParsersAction) -> None:
    stack = commands.add_parser("stack", help="the local stack: Prefect server, process worker, MLflow server")
    actions = stack.add_subparsers(required=True, metavar="ACTION")
    for name, help_text in [
        ("up", "start what is not running and wait until it answers"),
        ("down", "stop every process group the stack started"),
        ("status", "what runs, where, and its URLs"),
        ("deploy", "`prefect deploy --all` of prefect.yaml against the stack"),
    ]:
        action = actions.add_parser(name, help=help_text)
        action.set_defaults(command=_stack, action=name)
        action.add_argument("--data-dir", help="state, stores and logs (default: $LAB2_STACK_DIR or ./.lab2-stack)")
        action.add_argument("--prefect-port", type=int, help="Prefect server port (default: $LAB2_PREFECT_PORT or 4200)")
        action.add_argument("--mlflow-port", type=int, help="MLflow server port (default: $LAB2_MLFLOW_PORT or 5000)")


def _stack(args: argparse.Namespace) -> int:
    from flows import stack

    config = stack.StackConfig.from_env(args.data_dir, args.prefect_port, args.mlflow_port)
    if args.action == "up":
        try:
            state = stack.up(config)
        except stack.StackError as error:
            print(f"lab2 stack up: {error}", file=sys.stderr)
            return 1
        print(stack.describe(config, state))
    elif args.action == "down":
        stopped = stack.down(config)
        print(f"lab2 stack: stopped {', '.join(stopped) if stopped else 'nothing (not running)'}")
    elif args.action == "status":
        report = stack.status(config)
        print(stack.describe(config, {k: v for k, v in report.items() if v["running"]}))
        return 0 if report and all(v["healthy"] for v in report.values()) else 3
    else:
        done = stack.deploy(config, Path.cwd())
        print(done.stdout + done.stderr)
        return done.returncode
    return 0


def _run(args: argparse.Namespace) -> int:
    from flows.lab2 import lab2
    from lab2core.inputs import check_pipeline_inputs
    from lab2core.seeds import compare_seeds
    from tasks.record import runs_view_key
    from tasks.tracking import TrackingError, check_tracking_uri, redact, run_tags, runs_url, tracking_uri, ui_command

    params = {
        "dataset": args.dataset,
        "label_column": args.label_column,
        "rank": args.rank,
        "gd_lr": args.gd_lr,
        "gd_epochs": args.gd_epochs,
        "gd_seed": args.gd_seed,
        "lrs": args.lrs,
        "iterations": args.iterations,
        "seeds": args.seeds,
        "split_seed": args.split_seed,
        "hidden": args.hidden,
        "scaling": args.scaling,
        "cell_figures": args.cell_figures,
        "protocol": args.protocol,
        "torch_threads": args.torch_threads,
        "experiment": args.experiment,
        "task_runner": args.task_runner,
        "dask_address": args.dask_address,
        "force": args.force,
    }
    problems = _invalid_options(lab2.fn, params)
    if not problems:
        try:
            setup = MLPSetup(args.dataset, args.split_seed, args.hidden, args.scaling, args.protocol)
            check_pipeline_inputs(args.dataset, args.label_column, args.rank, setup)
            check_tracking_uri(tracking_uri())
        except InputError as error:
            problems = [str(error)]
    if problems:
        print("lab2 run: bad input:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    uri = tracking_uri()
    print(f"lab2: tracking to {redact(uri)}, experiment {args.experiment!r}", flush=True)
    try:
        result = lab2(**params)
        reuse = run_tags(result.parent_run_id)
        url = runs_url(args.experiment, runs_view_key())
    except TrackingError as error:
        print(f"lab2 run: tracking failed: {error}\nRun the same command again once MLflow answers: finished runs are reused.", file=sys.stderr)
        return EXIT_TRACKING_FAILED
    print("\nQ1 factorisation (loss = ‖A − UVᵀ‖²_F):")
    print(result.factorisation.to_string(index=False))
    print("\nQ2 MLP grid (accuracy 0–1):")
    print(result.cells.to_string(index=False))
    seeds = compare_seeds(result.cells)
    print("\nOver seeds (95% interval: Student t):")
    print(_table(seeds.display()))
    print(f"Best group: {seeds.best_label()}")
    print("\n" + "\n".join(_summary_lines(result.cells, reuse)))
    print(f"\nMLflow parent run {result.parent_run_id}. Browse every run with:\n  {ui_command(uri)}\n  {url}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from lab2core.seeds import compare_seeds, compare_summaries, setup_differences
    from tasks.tracking import latest_grid_run, read_cells, tracking_uri

    if len(args.run_ids) > 2:
        print("lab2 compare: give at most two run ids", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        run_ids = args.run_ids or [latest_grid_run(args.experiment)]
        cells = [read_cells(run_id) for run_id in run_ids]
    except LookupError as error:
        print(f"lab2 compare: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    seeds = [compare_seeds(c) for c in cells]
    print(f"MLflow store {tracking_uri()}")
    if len(run_ids) == 1:
        print(f"\nRun {run_ids[0]}: MLP cells over seeds (95% interval: Student t)")
        print(_table(seeds[0].display()))
        print("\nNeighbouring learning rates (same iterations): is the difference real?")
        print(_table(seeds[0].overlaps))
        print(f"\nBest group: {seeds[0].best_label()}")
        return 0
    print(f"\nA = {run_ids[0]}\nB = {run_ids[1]}")
    for name, (a, b) in setup_differences(*cells).items():
        print(f"  setup differs: {name} A={a} B={b}")
    print(_table(compare_summaries(seeds[0].summary, seeds[1].summary)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from lab2core.report import compare_with_report, lab2_numbers, load_report_numbers

    problems = _invalid_options(_report_schema, {"seeds": args.seeds, "dataset": args.dataset})
    if problems:
        print("lab2 report: bad input:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"The report's numbers beside lab2's over seeds {axis_param(args.seeds, sep=' ')} on {args.dataset}:")
    print("(seed-report follows the report's procedure; held-out is lab2's recipe)\n")
    print(_table(compare_with_report(load_report_numbers(), lab2_numbers(args.seeds, args.dataset))))
    return 0


def _report_schema(seeds: Seeds, dataset: DatasetName) -> None:
    """Typed options of `lab2 report`."""


def _table(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def _summary_lines(cells: pd.DataFrame, parent_tags: dict[str, str]) -> list[str]:
    """What was reused, what was computed (the parent's lab2.*.units_* tags), and which cells diverged."""
    reused = sum(int(v) for k, v in parent_tags.items() if k.endswith(".units_reused"))
    computed = sum(int(v) for k, v in parent_tags.items() if k.endswith(".units_computed"))
    lines = [f"runs: {computed} computed, {reused} reused from earlier FINISHED runs of the same identity"]
    diverged = cells[cells["diverged"]]
    if len(diverged):
        which = ", ".join(f"lr={r.lr:g} it={r.iterations} seed={r.seed}" for r in diverged.itertuples())
        lines.append(f"diverged: {len(diverged)} of {len(cells)} cells (loss not finite; tag lab2.diverged=true): {which}")
    return lines


def _invalid_options(flow_fn: Callable[..., object], params: dict[str, object]) -> list[str]:
    """Check option values against the flow's own typed signature; one message per bad option."""
    hints = get_type_hints(flow_fn, include_extras=True)
    problems = []
    for name, value in params.items():
        try:
            TypeAdapter(hints[name]).validate_python(value)
        except ValidationError as error:
            for e in error.errors():
                problems.append(f"--{name.replace('_', '-')} {_shown(value)}: {e['msg'].removeprefix('Value error, ')}")
    return problems


def _shown(value: object) -> str:
    return axis_param(value if isinstance(value, (list, tuple)) else [value], sep=" ")


if __name__ == "__main__":
    sys.exit(main())
