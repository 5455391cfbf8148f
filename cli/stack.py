"""The stack: a Prefect server, a process worker on `lab2-process`, an MLflow server; `up`, `down`,
`status`, `deploy`.

On 127.0.0.1 and SQLite by default; on PostgreSQL with `postgres` (databases lab2_mlflow and
lab2_prefect, created when missing); beyond 127.0.0.1 only with authentication on both servers
(MLflow's basic-auth app, Prefect's API auth string), credentials taken from the environment.
Each service is recorded (pid, port, log) in the data directory's stack.json; `down` ends whole
process groups, since `mlflow server` leaves job consumers behind otherwise, and a second `up`
starts only what is not running. Passwords never reach stack.json, command lines or messages.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from lab2.cli.stack_config import (  # noqa: F401  (for callers)
    CREDENTIAL_ENV,
    POOL,
    StackConfig,
    StackError,
    check_config,
    client_urls,
    postgres_url,
    read_services,
    read_settings,
    redact_password,
    write_state,
)
from lab2.cli.stack_services import (
    QUIET,
    SERVICES,
    console_script,
    create_databases,
    descendant_groups,
    group_alive,
    services,
    start,
    stop_group,
    unanswered,
    wait_ready,
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
        spawned = descendant_groups(
            state[name]["pid"]
        )  # e.g. the worker's flow runs, each in a session of its own
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
    from prefect.automations import Automation
    from prefect.blocks.webhook import Webhook
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.types import SecretDict
    from pydantic import SecretStr

    spec = yaml.safe_load((project_dir / AUTOMATIONS_FILE).read_text())
    with temporary_settings({PREFECT_API_URL: client_urls(config)["PREFECT_API_URL"]}):
        # A webhook the user names may well be on this machine or network: private addresses
        # allowed.
        hook = Webhook(
            method="POST",
            url=SecretStr(webhook_url),
            headers=SecretDict({"Content-Type": "application/json"}),
            allow_private_urls=True,
        )
        block_id = hook.save(
            ALERT_BLOCK, overwrite=True, _sync=True
        )  # _sync: a caller's event loop (a test's browser) aside
        spec["actions"] = [
            {**action, "block_document_id": str(block_id)} for action in spec["actions"]
        ]
        wanted = Automation.model_validate(spec)
        try:
            found = Automation.read(name=wanted.name, _sync=True)
        except ValueError:
            wanted.create(_sync=True)
        else:
            wanted.id = found.id
            wanted.update(_sync=True)
    return wanted.name


def describe(config: StackConfig, state: Mapping[str, dict]) -> str:
    """Human summary: what runs where, the logs, and the environment for clients."""
    backend = read_settings(config.data_dir).get(
        "backend", config.backend
    )  # as started, also when asked without --postgres
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
