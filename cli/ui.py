"""`lab2 ui`: the MLflow UI on the store the last `lab2 run` here used, its runs in lab2's view,
until Ctrl-C.

The store is --tracking-uri, else MLFLOW_TRACKING_URI, else the one recorded by the last `lab2
run` in this directory, else a running `lab2 stack`'s MLflow server, else ./mlflow.db. A server's
UI is only linked; a local store gets `mlflow ui` on 127.0.0.1, in a process group of its own
that Ctrl-C or SIGTERM ends.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab2.cli.processes import (
    answers,
    console_script,
    free_port,
    group_alive,
    last_log_line,
    start_group,
    stop_group,
)
from lab2.cli.stack_services import NO_JOBS, QUIET, StackConfig, read_services
from lab2.core.errors import InputError

# in the working directory: the store and experiment of the last `lab2 run`
LAST_RUN = Path(".lab2") / "last_run.json"
LOG = Path(".lab2") / "mlflow-ui.log"
START_SECONDS = 60.0


def add_ui_parser(commands: argparse._SubParsersAction) -> None:
    ui = commands.add_parser(
        "ui",
        help="the MLflow UI on the last run's store, opened on lab2's runs view (Ctrl-C stops it)",
    )
    ui.set_defaults(command=_ui)
    ui.add_argument(
        "--tracking-uri",
        help="store or server (default: MLFLOW_TRACKING_URI, else the last `lab2 run` here)",
    )
    ui.add_argument("--experiment", help="MLflow experiment (default: the last run's, else lab2)")
    ui.add_argument(
        "--port", type=int, help="port of `mlflow ui` on 127.0.0.1 (default: a free one)"
    )


def record_last_run(uri: str, experiment: str) -> None:
    """What `lab2 ui` opens next in this directory (credentials stay out of the file: `uri` is
    redacted)."""
    LAST_RUN.parent.mkdir(exist_ok=True)
    LAST_RUN.write_text(json.dumps({"tracking_uri": uri, "experiment": experiment}) + "\n")


def _ui(args: argparse.Namespace) -> int:
    from lab2.tasks.tracking import check_tracking_uri, redact, saved_runs_link

    uri, experiment = _store(args)
    try:
        if args.port is not None and not 0 < args.port < 65536:
            raise InputError(f"--port {args.port}: give a port from 1 to 65535")
        check_tracking_uri(uri)
        if uri.startswith("sqlite:") and not Path(uri.removeprefix("sqlite:///")).is_file():
            raise InputError(f"no MLflow store at {redact(uri)} yet; `lab2 run` makes one")
        with _tracking_uri(uri):
            route = saved_runs_link(_experiment_id(experiment, uri))
    except InputError as error:
        print(f"lab2 ui: bad input: {error}", file=sys.stderr)
        return 2
    if uri.startswith(("http://", "https://")):
        print(
            f"lab2 ui: {experiment!r} on the MLflow server {redact(uri)}:\n  "
            f"{redact(uri).rstrip('/')}/{route}"
        )
        return 0
    return _serve(uri, args.port or free_port(), route, redact(uri))


def _store(args: argparse.Namespace) -> tuple[str, str]:
    last = json.loads(LAST_RUN.read_text()) if LAST_RUN.is_file() else {}
    stack = read_services(StackConfig.from_env().data_dir).get("mlflow-server", {})
    running = stack.get("url") if stack and group_alive(stack["pid"]) else None
    uri = (
        args.tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or last.get("tracking_uri")
        or running
    )
    return uri or f"sqlite:///{Path('mlflow.db').resolve()}", args.experiment or last.get(
        "experiment"
    ) or "lab2"


@contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """The block's lookups go to `uri`; MLFLOW_TRACKING_URI as it was after (a caller in this
    process, such as a test, keeps its own)."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if before is None:
            del os.environ["MLFLOW_TRACKING_URI"]
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def _experiment_id(name: str, uri: str) -> str:
    from lab2.tasks.tracking import find_experiment, redact

    found = find_experiment(name)
    if found is None:
        raise InputError(
            f"no experiment {name!r} in {redact(uri)}; give --experiment, or `lab2 run` first"
        )
    return found


def _serve(uri: str, port: int, route: str, shown: str) -> int:
    """`mlflow ui` on `uri` until Ctrl-C or SIGTERM, then its whole process group ends."""
    LOG.parent.mkdir(exist_ok=True)
    command = [
        console_script("mlflow"),
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    server = start_group(command, {**os.environ, **QUIET, **NO_JOBS}, LOG)
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C stops it however it was started: a parent may hand down SIGINT ignored or blocked.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while not answers(f"{address}/health"):
            if not group_alive(server.pid) or time.monotonic() > deadline:
                print(
                    f"lab2 ui: mlflow ui did not start: {last_log_line(LOG)} (log: {LOG.resolve()})"
                )
                return 1
            time.sleep(0.3)
        print(
            f"lab2 ui: the MLflow UI on {shown}; open\n  {address}/{route}\nCtrl-C stops it.",
            flush=True,
        )
        while group_alive(server.pid):
            time.sleep(0.5)
        print(f"lab2 ui: mlflow ui ended: {last_log_line(LOG)} (log: {LOG.resolve()})")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_group(server.pid, grace=10.0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends `lab2 ui` as Ctrl-C does
