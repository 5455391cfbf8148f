"""The `lab2` command: run the pipeline on embedded defaults, with the lab's parameters as options."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated, get_args, get_origin

import pandas as pd

from lab2.cli.prefect_api import TemporaryAPI, start_temporary_api
from lab2.cli.stack_command import add_stack_parser
from lab2.core.params import PIPELINE_PARAMETERS, InputError, MLPSetup, Parameter, axis_param, invalid_parameters
from lab2.core.seeds import METRICS

if TYPE_CHECKING:
    from lab2.core.seeds import SeedComparison

# Options kept under their earlier names too.
_ALIASES = {"split_seeds": ("--split-seed",)}
EXIT_TRACKING_FAILED = 1
EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    """The `lab2` command on `argv` (default: the command line); returns its exit status."""
    args = _parser().parse_args(argv)
    return args.command(args)


def entry() -> None:
    """The console script: `main`, every exit hook (Prefect's flushes, the temporary API's stop), then the end of
    the process without the interpreter's teardown of torch, MLflow and Prefect, which takes about 3 s here and
    frees nothing a finished process needs."""
    status = {"code": 1}  # an uncaught exception ends with 1, as Python's own exit would
    atexit.register(_end_process, status)  # registered first, so it runs after every other exit hook
    try:
        status["code"] = main()
    except SystemExit as stop:  # argparse's usage errors and --help
        status["code"] = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        raise
    sys.exit(status["code"])


def _end_process(status: dict[str, int]) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status["code"])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab2", description="Lab 2 on PyTorch autograd as a Prefect pipeline tracked in MLflow.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the whole pipeline (Q1 factorisation, Q2 MLP grid)")
    run.set_defaults(command=_run)
    for name, parameter in PIPELINE_PARAMETERS.items():
        _add_option(run, name, parameter)

    compare = commands.add_parser("compare", help="seed table of a pipeline run (or two, side by side), read from MLflow")
    compare.set_defaults(command=_compare)
    compare.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="parent run id(s); default: the latest grid run")
    compare.add_argument("--experiment", default="lab2", help="MLflow experiment (default: lab2)")
    compare.add_argument("--pair", nargs=2, action="append", metavar=("GROUP_A", "GROUP_B"), default=[],
                         help='compare two groups of one run, e.g. --pair "lr=0.1 iterations=1000" "lr=0.01 iterations=1000" (repeatable)')
    compare.add_argument("--metric", default="val_accuracy", choices=METRICS, help="metric compared seed by seed (default: val_accuracy)")
    _add_option(compare, "min_effect", PIPELINE_PARAMETERS["min_effect"])

    report = commands.add_parser("report", help="the report's numbers beside lab2's, under both protocols")
    report.set_defaults(command=_report)
    report.add_argument("--seeds", type=int, nargs="+", default=tuple(range(10)), metavar="SEED", help="seeds (default: 0 to 9)")
    report.add_argument("--dataset", default="iris-uci", help="dataset (default: iris-uci, the report's copy)")
    add_stack_parser(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    params = {name: getattr(args, name) for name in PIPELINE_PARAMETERS}
    if problems := _invalid_options(params):
        return _bad_input(problems)
    api = start_temporary_api()  # boots while the imports and the data checks below run
    if api is not None:
        atexit.register(api.stop)  # registered before Prefect's own exit hooks, so it runs after they flush
    code = _run_pipeline(params, api)
    if code == EXIT_BAD_INPUT and api is not None:
        api.stop()
        atexit.unregister(api.stop)
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.pop("PREFECT_UI_URL", None)
    return code


def _run_pipeline(params: dict[str, object], api: TemporaryAPI | None) -> int:
    from lab2.flows.pipeline import lab2  # first: Prefect sets up its logging before other libraries touch the root logger
    from lab2.core.inputs import check_pipeline_inputs
    from lab2.tasks.tracking import TrackingError, check_tracking_uri, redact, tracking_uri, ui_command

    try:
        setup = MLPSetup(params["dataset"], params["split_seeds"][0], params["hidden"], params["scaling"], params["protocol"])
        check_pipeline_inputs(params["dataset"], params["label_column"], params["rank"], setup)
        check_tracking_uri(tracking_uri())
    except InputError as error:
        return _bad_input([str(error)])

    uri = tracking_uri()
    print(f"lab2: tracking to {redact(uri)}, experiment {params['experiment']!r}", flush=True)
    try:
        if api is not None:
            api.wait_ready()
        with api.flow_settings() if api is not None else nullcontext():
            result = lab2(**params)
    except TrackingError as error:
        print(f"lab2 run: tracking failed: {error}\nRun the same command again once MLflow answers: finished runs are reused.", file=sys.stderr)
        return EXIT_TRACKING_FAILED
    print("\nQ1 factorisation (loss = ‖A − UVᵀ‖²_F):")
    print(result.factorisation.to_string(index=False))
    print("\nQ2 MLP grid (accuracy 0–1):")
    print(result.cells.to_string(index=False))
    _print_seeds(result.seeds)
    print("\n" + "\n".join(_summary_lines(result.cells, result.units)))
    print(f"\nMLflow parent run {result.parent_run_id}. Browse every run with:\n  {ui_command(uri)}\n  {result.runs_url}")
    return 0


def _bad_input(problems: list[str]) -> int:
    print("lab2 run: bad input:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
    return EXIT_BAD_INPUT


def _compare(args: argparse.Namespace) -> int:
    from lab2.core.seeds import compare_runs, compare_seeds, setup_differences
    from lab2.tasks.tracking import latest_grid_run, read_cells, run_params, tracking_uri

    problems = _invalid_options({"min_effect": args.min_effect})
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
    from lab2.core.seeds import pairs_display

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
    from lab2.core.report import compare_with_report, lab2_numbers, load_report_numbers
    from lab2.core.stats import INTERVAL_KIND

    problems = _invalid_options({"seeds": args.seeds, "dataset": args.dataset})
    if problems:
        print("lab2 report: bad input:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"The report's numbers beside lab2's over seeds {axis_param(args.seeds, sep=' ')} on {args.dataset}:")
    print("(seed-report follows the report's procedure; held-out is lab2's recipe)\n")
    print(_table(compare_with_report(load_report_numbers(), lab2_numbers(args.seeds, args.dataset))))
    print(f"\nlab2: mean ± sd [min, max] over seeds, and the 95% CI of the seed summary: {INTERVAL_KIND}.")
    return 0


def _table(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def _summary_lines(cells: pd.DataFrame, units: pd.DataFrame) -> list[str]:
    """What was computed, what was reused, and which cells diverged."""
    from lab2.core.describe import units_sentence

    lines = [f"runs: {units_sentence(units)}"]
    diverged = cells[cells["diverged"]]
    if len(diverged):
        which = ", ".join(f"lr={r.lr:g} it={r.iterations} seed={r.seed}" for r in diverged.itertuples())
        lines.append(f"diverged: {len(diverged)} of {len(cells)} cells (loss not finite; tag lab2.diverged=true): {which}")
    return lines


def _add_option(parser: argparse.ArgumentParser, name: str, parameter: Parameter) -> None:
    """A `lab2 run` option from its pipeline parameter: a flag for a bool, several values for a grid axis."""
    flag = "--" + name.replace("_", "-")
    aliases = _ALIASES.get(name, ())
    if parameter.type is bool:
        if parameter.default:
            parser.add_argument(f"--no-{flag[2:]}", dest=name, action="store_false", help=f"without {parameter.help}")
        else:
            parser.add_argument(flag, action="store_true", help=parameter.help)
        return
    shown = "" if parameter.default is None else f" (default: {_shown(parameter.default)})"
    element = _scalar(get_args(parameter.type)[0] if isinstance(parameter.default, tuple) else parameter.type)
    many = {"nargs": "+", "metavar": name.upper().removesuffix("S")} if isinstance(parameter.default, tuple) else {}
    parser.add_argument(flag, *aliases, dest=name, type=element, default=parameter.default, help=parameter.help + shown, **many)


def _scalar(annotation: object) -> type:
    """The Python type argparse parses a value into (pydantic checks the rest)."""
    while get_origin(annotation) is Annotated or get_origin(annotation) is tuple:
        annotation = get_args(annotation)[0]
    return annotation if annotation in (int, float) else str


def _invalid_options(params: dict[str, object]) -> list[str]:
    """Check option values against the pipeline's parameter table; one message per bad option."""
    return [f"--{name.replace('_', '-')} {_shown(params[name])}: {message}" for name, message in invalid_parameters(params)]


def _shown(value: object) -> str:
    return axis_param(value if isinstance(value, (list, tuple)) else [value], sep=" ")


if __name__ == "__main__":
    sys.exit(main())
