"""The stack: a Prefect server, a process worker on `lab2-process`, an MLflow server; `up`, `down`,
`status`, `deploy`.

On 127.0.0.1 and SQLite by default; on PostgreSQL with `postgres` (databases lab2_mlflow and
lab2_prefect, created when missing); beyond 127.0.0.1 only with authentication on both servers
(MLflow's basic-auth app, Prefect's API auth string), credentials taken from the environment.
Each service is recorded (pid, port, log) in the data directory's stack.json; `down` ends whole
process groups, since `mlflow server` leaves job consumers behind otherwise, and a second `up`
starts only what is not running. Passwords never reach stack.json, command lines or messages.

`lab2 stack up|down|status|deploy` is the command line of these."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from lab2.cli.processes import (
    GroupSurvived,
    console_script,
    descendant_groups,
    group_alive,
    stop_group,
)
from lab2.cli.stack_services import (
    CREDENTIAL_ENV,
    POOL,
    QUIET,
    SERVICES,
    StackConfig,
    StackError,
    check_config,
    client_urls,
    create_databases,
    read_services,
    read_settings,
    redact_password,
    services,
    start,
    unanswered,
    wait_ready,
    write_state,
)
from lab2.core.errors import InputError

# beside prefect.yaml: the automation `lab2 stack deploy --alert-webhook` creates
AUTOMATIONS_FILE = "automations.yaml"
ALERT_BLOCK = "lab2-watch-alert"  # the Webhook block its action calls


def up(config: StackConfig) -> dict[str, dict]:
    """Start what is not running yet, wait until every service is ready; return the state."""
    check_config(config)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    state = {
        name: entry
        for name, entry in read_services(config.data_dir).items()
        if group_alive(entry["pid"])
    }
    recorded = read_settings(config.data_dir).get("backend")
    if len(state) < len(SERVICES) and state and recorded != config.backend:
        raise InputError(
            f"the stack in {config.data_dir} runs on {recorded}, not {config.backend}; give "
            "the same --postgres "
            "(its password is not stored), or `lab2 stack down` first"
        )
    if config.postgres and len(state) < len(SERVICES):
        create_databases(config.postgres)
    planned = services(config)
    started: list[str] = []
    try:
        for batch in (
            ("prefect-server", "mlflow-server"),
            ("prefect-worker",),
        ):  # the worker needs the API
            for name in [n for n in batch if n not in state]:
                state[name] = start(planned[name], config)
                started.append(name)
                write_state(config.data_dir, config.settings(), state)
            for name in batch:
                wait_ready(planned[name], state[name]["pid"], config)
    except BaseException:
        for name in reversed(started):  # what this call started; what ran before keeps running
            stop_group(state.pop(name)["pid"], grace=20.0)
        write_state(config.data_dir, config.settings(), state)
        raise
    return state


def down(config: StackConfig, grace: float = 20.0) -> list[str]:
    """End every recorded process group (TERM, then KILL after `grace` s) and wait; return what was
    stopped."""
    state = read_services(config.data_dir)
    stopped = []
    for name in [n for n in reversed(SERVICES) if n in state]:
        # e.g. the worker's flow runs, each in a session of its own
        spawned = descendant_groups(state[name]["pid"])
        if stop_group(state[name]["pid"], grace):
            stopped.append(name)
        for group in spawned:
            stop_group(group, grace)
    config.state_file.unlink(missing_ok=True)
    return stopped


def status(config: StackConfig) -> dict[str, dict]:
    """Each recorded service with `running` (its group alive) and `healthy` (it answers)."""
    planned = services(config)
    report = {}
    for name, entry in read_services(config.data_dir).items():
        alive = group_alive(entry["pid"])
        report[name] = {**entry, "running": alive, "healthy": alive and planned[name].ready()}
    return report


def deploy(config: StackConfig, project_dir: Path) -> subprocess.CompletedProcess:
    """`prefect deploy --all` from `project_dir`, unattended, with the client URLs for
    prefect.yaml's templates.

    Raises StackError, naming the URL, if a server does not answer.
    """
    urls = client_urls(config)
    if problems := unanswered(urls):
        raise StackError("\n".join(problems))
    env = {
        **os.environ,
        **QUIET,
        **urls,
        "PWD": str(project_dir.resolve()),
        "PREFECT_CLI_PROMPT": "false",
    }
    command = [console_script("prefect"), "--no-prompt", "deploy", "--all"]
    return subprocess.run(
        command, cwd=project_dir, env=env, capture_output=True, text=True, check=False
    )


def deploy_alert(config: StackConfig, project_dir: Path, webhook_url: str) -> str:
    """The automation of AUTOMATIONS_FILE on the stack's Prefect server, created or updated in
    place, its webhook action calling `webhook_url` (the Webhook block ALERT_BLOCK, saved with
    it); returns the automation's name."""
    import yaml
    from prefect.utilities.asyncutils import run_coro_as_sync

    spec = yaml.safe_load((project_dir / AUTOMATIONS_FILE).read_text())
    api_url = client_urls(config)["PREFECT_API_URL"]
    # Prefect's own runner: also from a caller whose event loop runs (a test's browser).
    return run_coro_as_sync(_save_alert(spec, api_url, webhook_url))


async def _save_alert(spec: dict, api_url: str, webhook_url: str) -> str:
    from prefect.automations import Automation
    from prefect.blocks.webhook import Webhook
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.types import SecretDict
    from pydantic import SecretStr

    with temporary_settings({PREFECT_API_URL: api_url}):
        # A webhook the user names may well be on this machine or network: private addresses
        # allowed.
        hook = Webhook(
            method="POST",
            url=SecretStr(webhook_url),
            headers=SecretDict({"Content-Type": "application/json"}),
            allow_private_urls=True,
        )
        block_id = await hook.asave(ALERT_BLOCK, overwrite=True)
        actions = [{**action, "block_document_id": str(block_id)} for action in spec["actions"]]
        wanted = Automation.model_validate({**spec, "actions": actions})
        try:
            found = await Automation.aread(name=wanted.name)
        except ValueError:
            await wanted.acreate()
        else:
            wanted.id = found.id
            await wanted.aupdate()
    return wanted.name


def describe(config: StackConfig, state: Mapping[str, dict]) -> str:
    """Human summary: what runs where, the logs, and the environment for clients."""
    # as started, also when asked without --postgres
    backend = read_settings(config.data_dir).get("backend", config.backend)
    lines = [
        (
            f"lab2 stack in {config.data_dir} (store: {backend}; auth: "
            f"{'on' if config.auth else 'off, 127.0.0.1 only'})"
        )
    ]
    for name in SERVICES:
        if (entry := state.get(name)) is None:
            lines.append(f"  {name:15} not running")
            continue
        health = "" if entry.get("healthy", True) else "  (not answering)"
        where = entry.get("url", f"pool {POOL}")
        lines.append(f"  {name:15} pid {entry['pid']:<7} {where}{health}  log {entry['log']}")
    lines += [
        f"Prefect UI  {config.prefect_ui_url}",
        f"MLflow UI   {config.mlflow_url}",
        "Point clients at it:",
    ]
    lines += [f"  export {k}={v}" for k, v in config.client_env().items()]
    if config.auth:
        lines.append(f"  with {', '.join(CREDENTIAL_ENV)} exported as when the stack started")
    return "\n".join(lines)


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
    try:
        config = StackConfig.from_env(
            args.data_dir, args.prefect_port, args.mlflow_port, args.host, args.postgres
        )
        return _STACK_ACTIONS[args.action](config, args)
    except InputError as error:
        print(
            f"lab2 stack {args.action}: bad input: {redact_password(str(error))}",
            file=sys.stderr,
        )
        return 2
    except (StackError, GroupSurvived) as error:
        print(f"lab2 stack {args.action}: {redact_password(str(error))}", file=sys.stderr)
        return 1


def _stack_up(config: StackConfig, args: argparse.Namespace) -> int:
    print(describe(config, up(config)))
    return 0


def _stack_down(config: StackConfig, args: argparse.Namespace) -> int:
    stopped = down(config)
    print(
        "lab2 stack: stopped "
        f"{', '.join(stopped) if stopped else f'nothing (none running in {config.data_dir})'}"
    )
    return 0


def _stack_status(config: StackConfig, args: argparse.Namespace) -> int:
    report = status(config)
    if not report:
        print(
            (
                f"lab2 stack status: no stack recorded in {config.data_dir}; start one with `lab2 "
                f"stack up --data-dir {config.data_dir}`"
            ),
            file=sys.stderr,
        )
        return 3
    print(describe(config, {k: v for k, v in report.items() if v["running"]}))
    problems = [
        (
            f"{name}: not answering at {entry.get('url', 'pool ' + POOL)}; see "
            f"{entry['log']}, then `lab2 stack up --data-dir {config.data_dir}`"
        )
        for name, entry in report.items()
        if not entry["healthy"]
    ]
    exported = {k: v for k, v in client_urls(config).items() if v != config.client_env()[k]}
    problems += unanswered(exported)
    for name, url in exported.items():
        print(
            f"exported {name}={redact_password(url)} (not the stack's {config.client_env()[name]})"
        )
    if problems:
        print("\n".join(problems), file=sys.stderr)
    return 3 if problems else 0


def _stack_deploy(config: StackConfig, args: argparse.Namespace) -> int:
    alert_webhook = args.alert_webhook
    if alert_webhook is not None:
        check_webhook_url(alert_webhook)
    done = deploy(config, Path.cwd())
    print(redact_password(done.stdout + done.stderr))
    if done.returncode != 0 or alert_webhook is None:
        return done.returncode
    name = deploy_alert(config, Path.cwd(), alert_webhook)
    print(
        f"Automation {name!r}: on event lab2.watch.changed, POST to "
        f"{redact_password(alert_webhook)}"
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
