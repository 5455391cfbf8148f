"""Time whole commands the way a user runs them: a fresh process in a fresh directory, the default
SQLite store.

(a) the lab scripted by hand (`handwritten_lab.py`: MLflow's fluent API, nested runs, one
    log_batch
    per run, the same figures; no Prefect);
(b) `lab2 run` cold: a new directory, a new store, Prefect's temporary API starting;
(c) `lab2 run` again in (b)'s directory: every unit reused;
(d) the 1,000-cell sweep as one cold `lab2 run --no-cell-figures`, against
(e) the untracked seed-style loop over the same cells (a fresh model per cell, as the lab does),
    and
(f) MLflow alone writing those 1,000 cell runs as lab2 writes them (`mlflow_floor.py`): the
    store's floor.

Then one more cold `lab2 run --verbose`, whose Prefect log lines give where a cold run's time
goes.

Targets: b/a ≤ 1.35, c/a ≤ 0.3, d/e ≤ 0.6, and no ERROR or WARNING line in a healthy run's output.
Times are medians of --repeats; each mode's repeats are interleaved with the others' so that a
noisy minute on a shared machine spreads over all of them.

python benchmarks/lab_benchmark.py [--repeats 3] [--no-sweep]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAB2 = str(Path(sys.executable).with_name("lab2"))
SWEEP_LRS = [
    f"{lr:.6g}" for lr in (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.063, 0.126, 0.251, 0.501)
]
SWEEP = [
    "--lrs",
    *SWEEP_LRS,
    "--iterations",
    *map(str, range(100, 1001, 100)),
    "--seeds",
    *map(str, range(10)),
]
SEED_STYLE_LOOP = f"""
import torch
from lab2.core.data import load_dataset
from lab2.core.mlp import prepare_mlp_data, train_cell_loop
torch.set_num_threads(1)
data = prepare_mlp_data(load_dataset("iris"))
cells = [
    train_cell_loop(data, lr, it, s)
    for lr in {[float(v) for v in SWEEP_LRS]}
    for it in range(100, 1001, 100)
    for s in range(10)
]
print(len(cells), "cells")
"""
# log levels, and Python's warnings (UserWarning: ...)
NOISE = re.compile(r"\b(ERROR|WARNING)\b|\w+Warning: ")
# Prefect's log lines: "14:11:11.351 | INFO    | Task run 'compare_over_seeds-1a6' - Finished in
# state Completed()"
EVENT = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d+) \| \w+ +\| (Task|Flow) run '([^']+)' - (Beginning (?:sub)?flow "
    r"run .* for flow '([^']+)'|Finished in state)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-sweep", dest="sweep", action="store_false", help="skip the 1,000-cell sweep (d, e)"
    )
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    times: dict[str, list[float]] = {}
    noise: list[str] = []
    for _ in range(args.repeats):
        for mode, seconds, lines in _one_round(env, args.sweep):
            times.setdefault(mode, []).append(seconds)
            noise += lines
            print(f"  {mode}: {seconds:.1f} s", flush=True)
    median = {mode: statistics.median(values) for mode, values in times.items()}
    print(
        f"\n{os.cpu_count()} cores; median of {args.repeats}; each a fresh process in a fresh "
        "directory\n"
    )
    print(f"{'what':<56} {'median s':>9}  runs")
    for mode, values in times.items():
        print(f"{mode:<56} {median[mode]:>9.1f}  {', '.join(f'{v:.1f}' for v in values)}")
    a = median["a hand-written script (MLflow fluent, no Prefect)"]
    print(f"\nb/a = {median['b lab2 run, cold'] / a:.2f} (target ≤ 1.35)")
    print(f"c/a = {median['c lab2 run again, every unit reused'] / a:.2f} (target ≤ 0.3)")
    if args.sweep:
        d, e = (
            median["d sweep, 1,000 cells: lab2 run --no-cell-figures"],
            median["e sweep, 1,000 cells: untracked seed-style loop"],
        )
        print(f"d/e = {d / e:.2f} (target ≤ 0.6)")
    if args.sweep:
        print(
            "d − f = "
            f"{d - median['f MLflow alone: the sweep’s 1,000 cell runs, written']:.1f} s: the "
            "tracked sweep beyond its runs' writes"
        )
    print(
        f"ERROR/WARNING lines in lab2 run's output: {len(noise)}"
        + "".join(f"\n  {line}" for line in noise[:10])
    )
    print(
        "\nWhere a cold lab2 run's time goes (one more cold run, --verbose; seconds from the "
        "event before):"
    )
    for stage, seconds in _breakdown(env):
        print(f"  {stage:<44} {seconds:>5.1f}")


def _breakdown(env: dict[str, str]) -> list[tuple[str, float]]:
    """A cold `lab2 run --verbose`: the time before each flow's start and each task's or flow's end,
    summed by name."""
    with tempfile.TemporaryDirectory(prefix="lab2-bench-") as root:
        started = datetime.datetime.now()
        done = subprocess.run(
            [LAB2, "run", "--verbose"], cwd=root, env=env, capture_output=True, text=True
        )
        ended = datetime.datetime.now()
    return _stages(done.stdout + done.stderr, started, ended)


def _stages(
    output: str, started: datetime.datetime, ended: datetime.datetime
) -> list[tuple[str, float]]:
    flows, stages, previous = {}, {}, started
    for line in output.splitlines():
        if not (event := EVENT.match(line)):
            continue
        clock, kind, run, what, flow = event.groups()
        when = datetime.datetime.combine(started.date(), datetime.time.fromisoformat(clock))
        if flow:
            flows[run] = flow
        name = (
            f"flow {flows.get(run, run)} " + ("start" if flow else "end")
            if kind == "Flow"
            else re.sub(r"-[0-9a-f]{3}$|-\d+$", "", run)
        )
        stages[name] = stages.get(name, 0.0) + (when - previous).total_seconds()
        previous = when
    stages["exit"] = (ended - previous).total_seconds()
    return list(stages.items())


def _one_round(env: dict[str, str], sweep: bool) -> list[tuple[str, float, list[str]]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="lab2-bench-") as root:
        hand, lab = Path(root, "hand"), Path(root, "lab2")
        hand.mkdir(), lab.mkdir()
        results.append(
            (
                "a hand-written script (MLflow fluent, no Prefect)",
                *_timed([sys.executable, str(HERE / "handwritten_lab.py")], hand, env),
            )
        )
        results.append(("b lab2 run, cold", *_timed([LAB2, "run"], lab, env)))
        results.append(("c lab2 run again, every unit reused", *_timed([LAB2, "run"], lab, env)))
        if sweep:
            swept = Path(root, "sweep")
            swept.mkdir()
            results.append(
                (
                    "d sweep, 1,000 cells: lab2 run --no-cell-figures",
                    *_timed([LAB2, "run", *SWEEP, "--no-cell-figures"], swept, env),
                )
            )
            results.append(
                (
                    "e sweep, 1,000 cells: untracked seed-style loop",
                    *_timed([sys.executable, "-c", SEED_STYLE_LOOP], swept, env),
                )
            )
            floor = Path(root, "floor")
            floor.mkdir()
            results.append(
                (
                    "f MLflow alone: the sweep’s 1,000 cell runs, written",
                    *_timed([sys.executable, str(HERE / "mlflow_floor.py")], floor, env),
                )
            )
    return results


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, list[str]]:
    """Wall time of one command, and the ERROR/WARNING lines it printed (lab2's only)."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:2])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    output = done.stdout + done.stderr
    noisy = (
        [line.strip()[:160] for line in output.splitlines() if NOISE.search(line)]
        if command[0] == LAB2
        else []
    )
    return seconds, noisy


if __name__ == "__main__":
    main()
