"""The `lab2` command: run the pipeline on embedded defaults, with the lab's parameters as options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, get_type_hints

from pydantic import TypeAdapter, ValidationError

import pandas as pd

from lab2core.params import (
    LAB_ITERATIONS,
    LAB_LRS,
    LAB_SEEDS,
    LAB_SPLIT_SEEDS,
    DatasetName,
    Effect,
    InputError,
    MLPSetup,
    Seeds,
    axis_param,
)
from lab2core.seeds import DEFAULT_MIN_EFFECT, METRICS

if TYPE_CHECKING:
    from lab2core.seeds import SeedComparison

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
    run.add_argument("--split-seeds", "--split-seed", dest="split_seeds", type=int, nargs="+", default=LAB_SPLIT_SEEDS, metavar="SEED",
                     help="seeds of the 100/50 train/validation shuffle; the grid runs on each (default: 0)")
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
    _add_min_effect(run)

    compare = commands.add_parser("compare", help="seed table of a pipeline run (or two, side by side), read from MLflow")
    compare.set_defaults(command=_compare)
    compare.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="parent run id(s); default: the latest grid run")
    compare.add_argument("--experiment", default="lab2", help="MLflow experiment (default: lab2)")
    compare.add_argument("--pair", nargs=2, action="append", metavar=("GROUP_A", "GROUP_B"), default=[],
                         help='compare two groups of one run, e.g. --pair "lr=0.1 iterations=1000" "lr=0.01 iterations=1000" (repeatable)')
    compare.add_argument("--metric", default="val_accuracy", choices=METRICS, help="metric compared seed by seed (default: val_accuracy)")
    _add_min_effect(compare)

    report = commands.add_parser("report", help="the report's numbers beside lab2's, under both protocols")
    report.set_defaults(command=_report)
    report.add_argument("--seeds", type=int, nargs="+", default=tuple(range(10)), metavar="SEED", help="seeds (default: 0 to 9)")
    report.add_argument("--dataset", default="iris-uci", help="dataset (default: iris-uci, the report's copy)")
    _add_stack_parser(commands)
    return parser


def _add_min_effect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-effect", type=float, default=DEFAULT_MIN_EFFECT, metavar="DIFF",
                        help="smallest difference worth detecting, for the seeds it needs (default: 0.02, one of 50 validation rows)")


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
    from tasks.tracking import TrackingError, check_tracking_uri, redact, run_metrics, run_params, tracking_uri, ui_command

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
        "split_seeds": args.split_seeds,
        "hidden": args.hidden,
        "scaling": args.scaling,
        "cell_figures": args.cell_figures,
        "protocol": args.protocol,
        "torch_threads": args.torch_threads,
        "experiment": args.experiment,
        "task_runner": args.task_runner,
        "dask_address": args.dask_address,
        "force": args.force,
        "min_effect": args.min_effect,
    }
    problems = _invalid_options(lab2.fn, params)
    if not problems:
        try:
            setup = MLPSetup(args.dataset, args.split_seeds[0], args.hidden, args.scaling, args.protocol)
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
        reuse = run_metrics(result.parent_run_id)
        val_rows = _val_rows(run_params(result.parent_run_id))
    except TrackingError as error:
        print(f"lab2 run: tracking failed: {error}\nRun the same command again once MLflow answers: finished runs are reused.", file=sys.stderr)
        return EXIT_TRACKING_FAILED
    print("\nQ1 factorisation (loss = ‖A − UVᵀ‖²_F):")
    print(result.factorisation.to_string(index=False))
    print("\nQ2 MLP grid (accuracy 0–1):")
    print(result.cells.to_string(index=False))
    _print_seeds(compare_seeds(result.cells, val_rows, args.min_effect))
    print("\n" + "\n".join(_summary_lines(result.cells, reuse)))
    print(f"\nMLflow parent run {result.parent_run_id}. Browse every run with:\n  {ui_command(uri)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from lab2core.seeds import compare_runs, compare_seeds, setup_differences
    from tasks.tracking import latest_grid_run, read_cells, run_params, tracking_uri

    problems = _invalid_options(_compare_schema, {"min_effect": args.min_effect})
    if len(args.run_ids) > 2:
        problems.append(f"{len(args.run_ids)} run ids: give at most two")
    if args.pair and len(args.run_ids) == 2:
        problems.append("--pair names two groups of one run: give one run id (or none, for the latest)")
    try:
        run_ids = args.run_ids or [latest_grid_run(args.experiment)]
        cells = [read_cells(run_id) for run_id in run_ids]
        if len(run_ids) == 1 and not problems:
            seeds = compare_seeds(cells[0], _val_rows(run_params(run_ids[0])), args.min_effect, args.pair, args.metric)
    except (LookupError, InputError) as error:
        problems.append(str(error))
    if problems:
        print("lab2 compare: " + "\n  ".join(problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"MLflow store {tracking_uri()}")
    if len(run_ids) == 1:
        print(f"\nRun {run_ids[0]}:", end="")
        _print_seeds(seeds, named=bool(args.pair))
        return 0
    print(f"\nA = {run_ids[0]}\nB = {run_ids[1]}")
    for name, (a, b) in setup_differences(*cells).items():
        print(f"  setup differs: {name} A={a} B={b}")
    pairs, _ = compare_runs(cells[0], cells[1], args.metric, args.min_effect)
    print(f"\nEach cell of A against the same cell of B, seed by seed ({args.metric}, A − B):")
    _print_pairs(pairs)
    return 0


def _compare_schema(min_effect: Effect) -> None:
    """Typed options of `lab2 compare`."""


def _val_rows(params: dict[str, str]) -> int | None:
    """The validation rows a grid run recorded (runs older than the param have none)."""
    return int(params["val_rows"]) if "val_rows" in params else None


def _print_seeds(seeds: SeedComparison, named: bool = False) -> None:
    """The seed table with its notes, the paired comparisons, and the best group."""
    print(" MLP cells over seeds")
    print(_table(seeds.display()))
    print("\n".join(f"  {note}" for note in seeds.notes()))
    which = "the groups you named" if named else "neighbours along lr and iterations, and the best group against every other"
    print(f"\nPaired comparisons of {seeds.pairs['metric'].iloc[0] if len(seeds.pairs) else 'val_accuracy'}, A − B seed by seed: {which}")
    _print_pairs(seeds.pairs)
    print(f"\nBest group: {seeds.best_label()}")


def _print_pairs(pairs: pd.DataFrame) -> None:
    from lab2core.seeds import pairs_display

    if pairs.empty:
        print("  (no pairs to compare)")
        return
    table = pairs_display(pairs)
    table.insert(0, "#", range(1, len(table) + 1))
    print(_table(table))
    effect = pairs["min_effect"].iloc[0]
    print(
        "  [low, high]: 95% t interval of the mean difference; p_t: paired t-test; p_holm: Holm-adjusted over the "
        f"{len(pairs)} row(s) shown; p_signflip: exact sign-flip test; P(A>B): share of seeds where A is higher (ties half);\n"
        "  seeds_80%: seeds for 80% power at α = 0.05 for the observed difference; "
        f"seeds_min_effect: for a difference of {effect:g}; seeds_ci_min_effect: for a 95% interval of ±{effect:g}."
    )
    print("Verdicts:")
    print("\n".join(f"  {k}. {verdict}" for k, verdict in enumerate(pairs["verdict"], start=1)))


def _report(args: argparse.Namespace) -> int:
    from lab2core.report import compare_with_report, lab2_numbers, load_report_numbers
    from lab2core.stats import INTERVAL_KIND

    problems = _invalid_options(_report_schema, {"seeds": args.seeds, "dataset": args.dataset})
    if problems:
        print("lab2 report: bad input:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"The report's numbers beside lab2's over seeds {axis_param(args.seeds, sep=' ')} on {args.dataset}:")
    print("(seed-report follows the report's procedure; held-out is lab2's recipe)\n")
    print(_table(compare_with_report(load_report_numbers(), lab2_numbers(args.seeds, args.dataset))))
    print(f"\nlab2: mean ± sd [min, max] over seeds, and the 95% CI of the seed summary: {INTERVAL_KIND}.")
    return 0


def _report_schema(seeds: Seeds, dataset: DatasetName) -> None:
    """Typed options of `lab2 report`."""


def _table(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def _summary_lines(cells: pd.DataFrame, parent_metrics: dict[str, float]) -> list[str]:
    """What was reused, what was computed, and which cells diverged."""
    reused = sum(v for k, v in parent_metrics.items() if k.endswith(".units_reused"))
    computed = sum(v for k, v in parent_metrics.items() if k.endswith(".units_computed"))
    lines = [f"runs: {computed:.0f} computed, {reused:.0f} reused from earlier FINISHED runs of the same identity"]
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
