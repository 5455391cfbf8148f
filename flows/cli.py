"""The `lab2` command: run the pipeline on embedded defaults, with the lab's parameters as options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, get_type_hints

from pydantic import TypeAdapter, ValidationError

from lab2core.params import LAB_ITERATIONS, LAB_LRS, LAB_SEEDS, InputError, MLPSetup, axis_param

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
    run.add_argument("--experiment", default="lab2", help="MLflow experiment (default: lab2)")
    run.add_argument("--force", action="store_true", help="recompute every unit, even those with a FINISHED run of the same identity")
    return parser


def _run(args: argparse.Namespace) -> int:
    from flows.lab2 import lab2
    from lab2core.inputs import check_pipeline_inputs
    from tasks.tracking import TrackingError, check_tracking_uri, redact, run_metrics, tracking_uri, ui_command

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
        "experiment": args.experiment,
        "force": args.force,
    }
    problems = _invalid_options(lab2.fn, params)
    if not problems:
        try:
            setup = MLPSetup(args.dataset, args.split_seed, args.hidden, args.scaling)
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
    except TrackingError as error:
        print(f"lab2 run: tracking failed: {error}\nRun the same command again once MLflow answers: finished runs are reused.", file=sys.stderr)
        return EXIT_TRACKING_FAILED
    print("\nQ1 factorisation (loss = ‖A − UVᵀ‖²_F):")
    print(result.factorisation.to_string(index=False))
    print("\nQ2 MLP grid (accuracy 0–1):")
    print(result.cells.to_string(index=False))
    print("\n" + "\n".join(_summary_lines(result.cells, reuse)))
    print(f"\nMLflow parent run {result.parent_run_id}. Browse every run with:\n  {ui_command(uri)}")
    return 0


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
