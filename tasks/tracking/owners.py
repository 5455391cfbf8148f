"""Who owns a run: every run carries its owner process (tag lab2.owner) and is created once, even
when a reply is lost; a RUNNING run whose owner is gone can be marked KILLED by whoever finds it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence

import psutil
from mlflow.entities import Run

from lab2.tasks.layout import CREATE_TOKEN_TAG, OWNER_TAG, STALE_TAG
from lab2.tasks.tracking.connection import client, retried, retrying, search_runs


def reap_stale_runs(running: Sequence[Run]) -> list[str]:
    """Mark KILLED every one of these RUNNING runs whose owner process is gone; return their ids."""
    stale = [
        r for r in running if OWNER_TAG in r.data.tags and not owner_alive(r.data.tags[OWNER_TAG])
    ]
    for run in stale:
        _mark_stale(
            run.info.run_id, f"owner {run.data.tags[OWNER_TAG]} was gone when {owner()} started"
        )
    return [r.info.run_id for r in stale]


@retried("the stale mark of run {run_id}")
def _mark_stale(run_id: str, reason: str) -> None:
    client().set_tag(run_id, STALE_TAG, reason)
    client().set_terminated(run_id, "KILLED")


def owner() -> str:
    """This process as host/pid/start time (s since epoch), so a later process can tell if it is
    gone."""
    return owner_of(os.getpid())


def owner_alive(tag: str) -> bool:
    """False only if `tag` names a process of this host that no longer runs (or whose pid was
    reused)."""
    try:
        host, pid_text, _ = tag.rsplit("/", 2)
        pid = int(pid_text)
    except ValueError:
        return True  # not ours to judge
    if host != socket.gethostname():
        return True  # another machine: cannot tell, so never killed from here
    try:
        return owner_of(pid) == tag
    except psutil.Error:
        return False


def owner_of(pid: int) -> str:
    return f"{socket.gethostname()}/{pid}/{psutil.Process(pid).create_time():.2f}"


def create_run(exp_id: str, run_name: str, tags: Mapping[str, str], what: str) -> str:
    """Create a run once, even if a retry follows a reply that was lost: a retry first looks for the
    run's token."""
    token = uuid.uuid4().hex
    tags = {**tags, CREATE_TOKEN_TAG: token}
    attempts = 0

    def create() -> str:
        nonlocal attempts
        attempts += 1
        if attempts > 1 and (
            created := search_runs(exp_id, f"tags.`{CREATE_TOKEN_TAG}` = '{token}'")
        ):
            return created[0].info.run_id
        # retried as a whole, below
        return client().create_run(exp_id, run_name=run_name, tags=tags).info.run_id

    return retrying(what, create)
