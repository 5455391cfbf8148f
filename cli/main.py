"""The `lab2` command: run the pipeline on embedded defaults, with the lab's parameters as
options."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psutil
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_settings import CliSettingsSource

from lab2.cli import render
from lab2.cli.prefect_api import TemporaryAPI, start_temporary_api
from lab2.cli.progress import progress_line
from lab2.cli.stack import add_stack_parser
from lab2.cli.stopping import (
    EXIT_STATUS,
    end_children,
    stop_signal,
    stop_signals_handled,
    stopped_message,
)
from lab2.cli.ui import add_ui_parser, record_last_run
from lab2.core.errors import InputError
from lab2.core.params import DEFAULT_MIN_EFFECT, METRICS, GridParams, Lab2Params, MinEffect
from lab2.core.settings import settings

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

EXIT_TRACKING_FAILED = 1
EXIT_BAD_INPUT = 2
LONG_RUN_SECONDS = 60  # past this, `lab2 run` says how long it expects


def main(argv: Sequence[str] | None = None) -> int:
    """The `lab2` command on `argv` (default: the command line); returns its exit status."""
    args = _parser().parse_args(argv)
    return args.command(args)


def entry() -> None:
    """The console script: `main`, every exit hook (Prefect's flushes, the temporary API's stop),
    then the end of the process without the interpreter's teardown of torch, MLflow and Prefect,
    which takes about 3 s here and frees nothing a finished process needs."""
    status = {"code": 1}  # an uncaught exception ends with 1, as Python's own exit would
    # registered first, so it runs after every other exit hook
    atexit.register(_end_process, status)
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
    parser = argparse.ArgumentParser(
        prog="lab2",
        description="Lab 2 on PyTorch autograd as a Prefect pipeline tracked in MLflow.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the whole pipeline (Q1 factorisation, Q2 MLP grid)")
    run.set_defaults(command=_run)
    _model_options(run, Lab2Params)
    run.add_argument(
        "--verbose",
        action="store_true",
        help="also print the log lines of every Prefect flow and task run "
        "(the Prefect UI keeps them either way)",
    )

    compare = commands.add_parser(
        "compare", help="seed table of a pipeline run (or two, side by side), read from MLflow"
    )
    compare.set_defaults(command=_compare)
    _model_options(compare, CompareOptions)
    compare.add_argument(
        "run_ids",
        nargs="*",
        metavar="RUN_ID",
        help="parent run id(s); default: the latest grid run",
    )
    compare.add_argument("--experiment", default="lab2", help="MLflow experiment (default: lab2)")
    compare.add_argument(
        "--pair",
        nargs=2,
        action="append",
        metavar=("GROUP_A", "GROUP_B"),
        default=[],
        help=(
            'compare two groups of one run, e.g. --pair "lr=0.1 it=1000" "lr=0.01 it=1000" (it= '
            "or iterations=; repeatable)"
        ),
    )
    compare.add_argument(
        "--metric",
        default="val_accuracy",
        choices=METRICS,
        help="metric compared seed by seed (default: val_accuracy)",
    )
    compare.add_argument(
        "--explain",
        action="store_true",
        help="after each verdict line, the reasoning behind it (tests, intervals, seeds needed)",
    )

    report = commands.add_parser(
        "report",
        help="the lab's report from a lab2 run: report.md and report.html, every claim checked",
    )
    report.set_defaults(command=_report)
    report.add_argument(
        "--run",
        dest="run_id",
        metavar="RUN_ID",
        help="a lab2 parent run (default: the experiment's latest)",
    )
    report.add_argument("--experiment", default="lab2", help="MLflow experiment (default: lab2)")
    report.add_argument(
        "--out",
        default=".",
        metavar="DIR",
        help="where to write the report (default: the current folder)",
    )
    report.add_argument(
        "--reproduce",
        action="store_true",
        help=(
            "instead, recompute the report's numbers outside any run, over --seeds on --dataset, "
            "and print them"
        ),
    )
    report.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=tuple(range(10)),
        metavar="SEED",
        help="with --reproduce (default: 0 to 9)",
    )
    report.add_argument(
        "--dataset",
        default="iris-uci",
        help="with --reproduce (default: iris-uci, the report's copy)",
    )
    history = commands.add_parser(
        "history",
        help="the last lab2 runs with their verdicts since the run before, and a figure of them",
    )
    history.set_defaults(command=_history)
    history.add_argument("--experiment", default="lab2", help="MLflow experiment (default: lab2)")
    history.add_argument(
        "--last", type=int, default=10, metavar="N", help="how many runs, newest last (default: 10)"
    )
    add_stack_parser(commands)
    add_ui_parser(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    params, problems = _validated(Lab2Params, args)
    if problems or params is None:
        return _bad_input("run", problems)
    try:
        cost = params.check_size(
            psutil.virtual_memory().available, os.cpu_count() or 1, settings().max_seconds
        )
    except InputError as error:
        return _bad_input("run", [str(error)])
    if cost.seconds > LONG_RUN_SECONDS:
        print(
            f"lab2: this run is expected to take about {render.duration(cost.seconds)} here; "
            "Ctrl-C stops it and keeps every "
            "finished run",
            flush=True,
        )
    if (
        not args.verbose
    ):  # before Prefect and MLflow set up their logging; a user's own setting wins
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    with stop_signals_handled():
        api = start_temporary_api()  # boots while the imports and the data checks below run
        if api is not None:
            # registered before Prefect's own exit hooks, so it runs after they flush
            atexit.register(api.stop)
        try:
            code = _rerun_if_done(params, under_prefect=api is None)
            if code is None:
                code = _run_pipeline(params, api)
            elif api is not None:
                api.stop()  # nothing ran on it
        except Exception:
            if stop_signal() is None:
                raise
            # a stop signal arrived as Prefect set up a task run, and it raised its own error
            code = None
        except (
            KeyboardInterrupt
        ):  # Ctrl-C or SIGTERM at any stage; Prefect hands SIGTERM on once its flows have ended
            code = None
        if code is None:
            end_children(spare={api.process.pid} if api is not None else set())
            print(stopped_message(params.experiment), file=sys.stderr)
            return EXIT_STATUS[stop_signal() or signal.SIGINT]
    if code == EXIT_BAD_INPUT and api is not None:
        api.stop()
        atexit.unregister(api.stop)
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.pop("PREFECT_UI_URL", None)
    return code


def _rerun_if_done(params: Lab2Params, under_prefect: bool) -> int | None:
    """A run whose results MLflow already holds (a FINISHED run of the same run key, every unit
    still there): recorded as a new parent run that copies them, without loading torch or the
    pipeline (under a Prefect server, as a flow run of `lab2`), and printed as that run printed
    them. None when there is work to do, or with --force."""
    from lab2.tasks.rerun import earlier_run, rerun_if_done
    from lab2.tasks.tracking import TrackingError, tracking_uri

    if params.force:
        return None
    try:
        if (earlier := earlier_run(params)) is None:
            return None
        if under_prefect:
            from lab2.flows.rerun import lab2_rerun

            done = lab2_rerun(params.experiment, *earlier)
        else:
            done = rerun_if_done(params.experiment, *earlier)
    except (OSError, InputError):
        # a dataset or store that cannot be read: the pipeline's own checks say what is wrong
        return None
    except TrackingError as error:
        return _tracking_failed(error)
    if done is None:
        return None
    _announce_store(params.experiment)
    print(render.rerun(done, tracking_uri()))
    return 0


def _announce_store(experiment: str) -> None:
    from lab2.tasks.tracking import redact, tracking_uri

    # a path alone on its line
    print(
        f"lab2: experiment {experiment!r} in the MLflow store\n  {redact(tracking_uri())}",
        flush=True,
    )
    record_last_run(redact(tracking_uri()), experiment)


def _tracking_failed(error: Exception) -> int:
    print(
        (
            f"lab2 run: tracking failed: {error}\nRun the same command again once MLflow answers: "
            "finished runs are reused."
        ),
        file=sys.stderr,
    )
    return EXIT_TRACKING_FAILED


def _run_pipeline(params: Lab2Params, api: TemporaryAPI | None) -> int:
    # first: Prefect sets up its logging before other libraries touch the root logger
    from lab2.flows.pipeline import lab2
    from lab2.tasks.layout import TERMINAL_TXT as TERMINAL_FILE
    from lab2.tasks.tracking import TrackingError, check_tracking_uri, log_text, tracking_uri

    try:
        notes = params.check_data()
        check_tracking_uri(tracking_uri())
    except InputError as error:
        return _bad_input("run", [str(error)])
    _announce_store(params.experiment)
    for note in notes:
        print(render.wrapped(f"lab2: {note}", "", "  "), flush=True)
    try:
        if api is not None:
            api.wait_ready()
        with api.flow_settings() if api is not None else nullcontext(), progress_line():
            result = lab2(params)
    except (
        InputError
    ) as error:  # the checks above should have caught it; the flow refused it before any run
        return _bad_input("run", [str(error)])
    except TrackingError as error:
        return _tracking_failed(error)
    results = render.results(result)
    print(results, render.lab2_result(result, tracking_uri()), sep="\n")
    try:  # what a rerun with nothing to do prints again; without it, a rerun runs the pipeline
        log_text(result.parent_run_id, results, TERMINAL_FILE)
    except TrackingError as error:
        return _tracking_failed(error)
    return 0


def _bad_input(command: str, problems: list[str]) -> int:
    """One line per problem (a library's message may hold line breaks); exit status 2."""
    print(
        "\n".join(f"lab2 {command}: bad input: {' '.join(p.split())}" for p in problems),
        file=sys.stderr,
    )
    return EXIT_BAD_INPUT


def _compare(args: argparse.Namespace) -> int:
    from lab2.core.seeds import compare_runs, compare_seeds, setup_differences
    from lab2.tasks.tracking import latest_grid_run, read_cells, redact, tracking_uri

    options, problems = _validated(CompareOptions, args)
    min_effect = options.min_effect if options is not None else DEFAULT_MIN_EFFECT
    if len(args.run_ids) > 2:
        problems.append(f"{len(args.run_ids)} run ids: give at most two")
    if args.pair and len(args.run_ids) == 2:
        problems.append(
            "--pair names two groups of one run: give one run id (or none, for the latest)"
        )
    try:
        run_ids = args.run_ids or [latest_grid_run(args.experiment)]
        cells = [read_cells(run_id) for run_id in run_ids]
        if len(run_ids) == 1 and not problems:
            seeds = compare_seeds(
                cells[0].frame, cells[0].val_rows, min_effect, args.pair, args.metric
            )
    except (LookupError, InputError) as error:
        problems.append(str(error))
    if problems:
        return _bad_input("compare", problems)
    # the store's address on a line of its own: a long path is never wrapped
    store = redact(tracking_uri())
    if len(run_ids) == 1:
        said = (
            render.named_pairs(seeds, args.explain)
            if args.pair
            else render.seeds(seeds, args.explain)
        )
        hint = "" if args.explain else "; --explain gives the reasoning"
        print(f"Run {run_ids[0]} of the MLflow store{hint}\n  {store}", said, sep="\n")
        return 0
    print(f"MLflow store:\n  {store}")
    print(f"\nA = {run_ids[0]}\nB = {run_ids[1]}")
    for name, (a, b) in setup_differences(cells[0].frame, cells[1].frame).items():
        print(f"  setup differs: {name} A={a} B={b}")
    pairs, _ = compare_runs(cells[0].frame, cells[1].frame, args.metric, min_effect)
    print(f"\nEach cell of A against the same cell of B, seed by seed ({args.metric}, A − B):")
    print(render.pairs(pairs, args.explain))
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.reproduce:
        return _reproduce_report(args)
    from lab2.tasks.layout import REPORT_HTML
    from lab2.tasks.layout import REPORT_MD as REPORT_MARKDOWN
    from lab2.tasks.report import lab_report_of
    from lab2.tasks.tracking import latest_grid_run

    try:
        report = lab_report_of(args.run_id or latest_grid_run(args.experiment))
    except LookupError as error:
        return _bad_input("report", [str(error)])
    out = Path(args.out)
    for path, png in report.figures.items():  # beside report.md, which links them
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(png)
    (out / REPORT_MARKDOWN).write_text(report.markdown)
    (out / REPORT_HTML).write_text(report.html)
    print(
        f"The lab's report from run {report.run_id}:\n  {(out / REPORT_MARKDOWN).resolve()}\n  "
        f"{(out / REPORT_HTML).resolve()}"
    )
    return 0


def _history(args: argparse.Namespace) -> int:
    """The last runs and their verdicts; the figure on the newest run as figures/history.png."""
    if args.last < 1:
        return _bad_input("history", [f"--last {args.last}: allowed is a whole number ≥ 1"])
    from lab2.core.plots import plot_history
    from lab2.tasks.figures import png
    from lab2.tasks.tracking import RunRecord, log_to_run, run_history

    try:
        runs = run_history(args.experiment, args.last)
    except LookupError as error:
        return _bad_input("history", [str(error)])
    print(render.history(runs))
    newest = runs["run_id"].iloc[-1]
    log_to_run(newest, RunRecord(figures={"history": png(plot_history(runs))}))
    print(f"\nThe figure: figures/history.png on run {newest}.")
    return 0


def _reproduce_report(args: argparse.Namespace) -> int:
    from lab2.core.report import compare_with_report, lab2_numbers, load_report_numbers
    from lab2.core.stats import INTERVAL_KIND

    problems = _problems(GridParams, {"seeds": args.seeds, "dataset": args.dataset})
    if problems:
        return _bad_input("report", problems)
    print(
        f"The report's numbers beside lab2's over seeds {render.flat(args.seeds)} on "
        f"{args.dataset}:"
    )
    print("(seed-report follows the report's procedure; held-out is lab2's recipe)\n")
    print(
        render.table(
            compare_with_report(load_report_numbers(), lab2_numbers(args.seeds, args.dataset))
        )
    )
    print(
        "\nlab2: mean ± sd [min, max] over seeds, and the 95% CI of the seed summary: "
        f"{INTERVAL_KIND}."
    )
    return 0


class CompareOptions(BaseModel):
    """`lab2 compare`'s options that a flow parameter also has."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_effect: MinEffect = DEFAULT_MIN_EFFECT


def _model_options(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """`model`'s fields as options of `parser`, added by pydantic-settings: --x-y for x_y,
    --x/--no-x for a bool, several values after a grid axis's option; one not given is left out."""

    def add_option(group: argparse.ArgumentParser, *flags: str, **options: Any) -> argparse.Action:
        field = model.model_fields[options["dest"]]
        if options.get("nargs") == "*":
            options["metavar"] = options["dest"].upper().removesuffix("S")
        options["help"] = _option_help(field)
        return group.add_argument(*flags, **options)

    CliSettingsSource(
        # A plain model, so the options alone are read (no environment). The source reads any
        # model's fields; its annotation names BaseSettings, which CliApp itself wraps models in.
        model,  # type: ignore[arg-type]
        root_parser=parser,
        cli_hide_none_type=True,
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_avoid_json=True,
        add_argument_method=add_option,
    )


def _option_help(field: FieldInfo) -> str:
    """A flow parameter's description with its default as a user types it."""
    default = field.default
    if isinstance(default, bool):
        return f"{field.description} (default: {'on' if default else 'off'})"
    if default is None:
        return str(field.description)
    shown = render.flat(default if isinstance(default, tuple) else [default])
    return f"{field.description} (default: {shown})"


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], args: argparse.Namespace) -> tuple[M | None, list[str]]:
    """The options in `args` that `model` declares, as `model` (its defaults for the rest), or one
    message per bad option: its value, what is wrong."""
    # The options given, as argparse parsed them (strings, and lists of them after a grid axis):
    # the model parses them itself, so a value such as nan gets the model's own message.
    values = {name: getattr(args, name) for name in model.model_fields if hasattr(args, name)}
    problems = _problems(model, values)
    return (None, problems) if problems else (model(**values), [])


def _problems(model: type[BaseModel], values: dict[str, Any]) -> list[str]:
    """One message per option of `values` that `model` refuses: the option, its value, why."""
    try:
        model(**values)
    except ValidationError as error:
        bad: dict[str, str] = {}
        for e in error.errors():
            name = str(e["loc"][0])
            value = values[name]
            shown = render.flat(value if isinstance(value, (list, tuple)) else [value])
            why = e["msg"].removeprefix("Value error, ")
            union_member = len(e["loc"]) > 1 and isinstance(e["loc"][1], str)
            if name in bad and union_member:  # "greater than 0, or 'auto'"
                bad[name] += f", or {why.removeprefix('Input should be ')}"
            elif name not in bad:
                bad[name] = f"--{name.replace('_', '-')} {shown}: {why}"
        return list(bad.values())
    return []


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """`argv` parsed and validated as `main` does, running nothing; bad input: SystemExit(2)."""
    args = _parser().parse_args(list(argv))
    problems: list[str] = []
    if args.command is _run:
        _, problems = _validated(Lab2Params, args)
    elif args.command is _compare:
        _, problems = _validated(CompareOptions, args)
    elif args.command is _report and args.reproduce:
        problems = _problems(GridParams, {"seeds": args.seeds, "dataset": args.dataset})
    if problems:
        raise SystemExit(_bad_input(args.command.__name__.lstrip("_"), problems))
    return args


if __name__ == "__main__":
    sys.exit(main())
