"""`lab2 stack up|down|status|deploy`: the options and what each action prints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from lab2.core.errors import InputError

if TYPE_CHECKING:
    from lab2.cli.stack_config import StackConfig


def add_stack_parser(commands: argparse._SubParsersAction) -> None:
    stack = commands.add_parser(
        "stack", help="the local stack: Prefect server, process worker, MLflow server"
    )
    actions = stack.add_subparsers(required=True, metavar="ACTION")
    for name, help_text in [
        ("up", "start what is not running and wait until it answers"),
        ("down", "stop every process group the stack started"),
        ("status", "what runs, where, and its URLs"),
        ("deploy", "`prefect deploy --all` of prefect.yaml against the stack"),
    ]:
        action = actions.add_parser(name, help=help_text)
        action.set_defaults(
            command=_stack, action=name, host=None, postgres=None, alert_webhook=None
        )
        action.add_argument(
            "--data-dir", help="state, stores and logs (default: $LAB2_STACK_DIR or ./.lab2-stack)"
        )
        action.add_argument(
            "--prefect-port",
            type=int,
            help="Prefect server port (default: the stack's, $LAB2_PREFECT_PORT or 4200)",
        )
        action.add_argument(
            "--mlflow-port",
            type=int,
            help="MLflow server port (default: the stack's, $LAB2_MLFLOW_PORT or 5000)",
        )
        if name == "deploy":
            action.add_argument(
                "--alert-webhook",
                metavar="URL",
                help="also create the automation of automations.yaml: when a run's numbers changed "
                "since the last run with its parameters (event lab2.watch.changed), Prefect "
                "POSTs to this http(s) URL",
            )
        if name == "up":
            action.add_argument(
                "--host",
                help="address to listen on (default: $LAB2_HOST or 127.0.0.1); any other turns "
                "authentication on, "
                "with MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD and "
                "PREFECT_API_AUTH_STRING from the environment",
            )
            action.add_argument(
                "--postgres",
                metavar="URL",
                help="PostgreSQL server postgresql://USER:PASSWORD@HOST:PORT for both servers "
                "(databases lab2_mlflow, lab2_prefect; default: $LAB2_POSTGRES_URL, else "
                "SQLite in the data directory)",
            )


def _stack(args: argparse.Namespace) -> int:
    from lab2.cli import stack

    config = stack.StackConfig.from_env(
        args.data_dir, args.prefect_port, args.mlflow_port, args.host, args.postgres
    )
    try:
        return _STACK_ACTIONS[args.action](stack, config, args)
    except InputError as error:
        print(
            f"lab2 stack {args.action}: bad input: {stack.redact_password(str(error))}",
            file=sys.stderr,
        )
        return 2
    except stack.StackError as error:
        print(f"lab2 stack {args.action}: {stack.redact_password(str(error))}", file=sys.stderr)
        return 1


def _stack_up(stack: ModuleType, config: StackConfig, args: argparse.Namespace) -> int:
    print(stack.describe(config, stack.up(config)))
    return 0


def _stack_down(stack: ModuleType, config: StackConfig, args: argparse.Namespace) -> int:
    stopped = stack.down(config)
    print(
        "lab2 stack: stopped "
        f"{', '.join(stopped) if stopped else f'nothing (none running in {config.data_dir})'}"
    )
    return 0


def _stack_status(stack: ModuleType, config: StackConfig, args: argparse.Namespace) -> int:
    report = stack.status(config)
    if not report:
        print(
            (
                f"lab2 stack status: no stack recorded in {config.data_dir}; start one with `lab2 "
                f"stack up --data-dir {config.data_dir}`"
            ),
            file=sys.stderr,
        )
        return 3
    print(stack.describe(config, {k: v for k, v in report.items() if v["running"]}))
    problems = [
        (
            f"{name}: not answering at {entry.get('url', 'pool ' + stack.POOL)}; see "
            f"{entry['log']}, then `lab2 stack up --data-dir {config.data_dir}`"
        )
        for name, entry in report.items()
        if not entry["healthy"]
    ]
    exported = {k: v for k, v in stack.client_urls(config).items() if v != config.client_env()[k]}
    problems += stack.unanswered(exported)
    for name, url in exported.items():
        print(
            f"exported {name}={stack.redact_password(url)} (not the stack's "
            f"{config.client_env()[name]})"
        )
    if problems:
        print("\n".join(problems), file=sys.stderr)
    return 3 if problems else 0


def _stack_deploy(stack: ModuleType, config: StackConfig, args: argparse.Namespace) -> int:
    alert_webhook = args.alert_webhook
    if alert_webhook is not None:
        check_webhook_url(alert_webhook)
    done = stack.deploy(config, Path.cwd())
    print(stack.redact_password(done.stdout + done.stderr))
    if done.returncode != 0 or alert_webhook is None:
        return done.returncode
    name = stack.deploy_alert(config, Path.cwd(), alert_webhook)
    print(
        f"Automation {name!r}: on event lab2.watch.changed, POST to "
        f"{stack.redact_password(alert_webhook)}"
    )
    return 0


def check_webhook_url(url: str) -> None:
    """Raise InputError unless `url` is an http(s) URL with a host."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InputError(
            f"--alert-webhook {url}: allowed is an http:// or https:// URL with a host, e.g. "
            "https://hooks.example.org/lab2"
        )


_STACK_ACTIONS = {
    "up": _stack_up,
    "down": _stack_down,
    "status": _stack_status,
    "deploy": _stack_deploy,
}
