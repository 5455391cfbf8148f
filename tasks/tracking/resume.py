"""Resume and ownership: unit identities on FINISHED runs, runs created once, runs of gone processes reaped.

A child run carries its unit's identity (tag lab2.identity); a FINISHED run of that identity is reused
instead of recomputed, and a newer finished run of an identity takes the tag from an older one
(lab2.superseded_by), so one finished run per identity carries it. Every run carries its owner process
(tag lab2.owner); a RUNNING run whose owner is gone is marked KILLED on the next start.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import psutil
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import IntegrityError

from lab2.tasks.tracking.connection import client, experiment_id, experiment_of, raw_client, retrying, search_runs

IDENTITY_TAG = "lab2.identity"


OWNER_TAG = "lab2.owner"


SUPERSEDED_TAG = "lab2.superseded_by"


CREATE_TOKEN_TAG = "lab2.create_token"


@dataclass(frozen=True)
class FinishedRun:
    """A FINISHED run found for a unit's identity: its id, final metrics and tags."""

    run_id: str
    metrics: Mapping[str, float]
    tags: Mapping[str, str] = field(default_factory=dict)


def finished_units(experiment: str, identities: Collection[str]) -> dict[str, FinishedRun]:
    """The FINISHED run that carries each identity, where one exists (the newest if several do)."""
    exp_id = experiment_id(experiment)
    wanted = set(identities)
    query = f"attributes.status = 'FINISHED' and tags.`{IDENTITY_TAG}` LIKE '%'"
    found: dict[str, Run] = {}
    for run in retrying("a search for finished runs", lambda: search_runs(exp_id, query)):
        identity = run.data.tags.get(IDENTITY_TAG)  # None if a concurrent process just superseded the run
        if identity in wanted and (identity not in found or _age(run) > _age(found[identity])):
            found[identity] = run
    return {i: FinishedRun(r.info.run_id, dict(r.data.metrics), dict(r.data.tags)) for i, r in found.items()}


def reap_stale_runs(exp_id: str) -> list[str]:
    """Mark KILLED every RUNNING run whose owner process is gone; return their ids."""
    running = retrying("a search for running runs", lambda: search_runs(exp_id, "attributes.status = 'RUNNING'"))
    stale = [r for r in running if OWNER_TAG in r.data.tags and not owner_alive(r.data.tags[OWNER_TAG])]
    for run in stale:
        reason = f"owner {run.data.tags[OWNER_TAG]} was gone when {owner()} started"
        client(f"the stale mark of run {run.info.run_id}").set_tag(run.info.run_id, "lab2.stale", reason)
        client(f"the stale mark of run {run.info.run_id}").set_terminated(run.info.run_id, "KILLED")
    return [r.info.run_id for r in stale]


def owner() -> str:
    """This process as host/pid/start time (s since epoch), so a later process can tell if it is gone."""
    return owner_of(os.getpid())


def owner_alive(tag: str) -> bool:
    """False only if `tag` names a process of this host that no longer runs (or whose pid was reused)."""
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
    """Create a run once, even if a retry follows a reply that was lost: a retry first looks for the run's token."""
    token = uuid.uuid4().hex
    tags = {**tags, CREATE_TOKEN_TAG: token}
    attempts = 0

    def create() -> str:
        nonlocal attempts
        attempts += 1
        if attempts > 1 and (created := search_runs(exp_id, f"tags.`{CREATE_TOKEN_TAG}` = '{token}'")):
            return created[0].info.run_id
        return raw_client().create_run(exp_id, run_name=run_name, tags=tags).info.run_id  # retried as a whole, below

    return retrying(what, create)


def settle_identities(run_id: str, identities: Collection[str]) -> None:
    """Leave each identity on its newest FINISHED run; older ones (from --force, or a concurrent
    process computing the same unit) get lab2.superseded_by. One search for a whole flow's units."""
    exp_id = experiment_of(run_id)
    wanted = set(identities)
    query = f"attributes.status = 'FINISHED' and tags.`{IDENTITY_TAG}` LIKE '%'"
    by_identity: dict[str, list[Run]] = {}
    for run in retrying("a search for finished runs", lambda: search_runs(exp_id, query)):
        identity = run.data.tags.get(IDENTITY_TAG)  # None if a concurrent process just superseded the run
        if identity in wanted:
            by_identity.setdefault(identity, []).append(run)
    for identity, runs in by_identity.items():
        newest = max(runs, key=_age)
        for run in runs:
            if run is not newest:
                retrying(f"the identity of run {run.info.run_id}", lambda: _supersede(run.info.run_id, newest.info.run_id, identity))


def _supersede(run_id: str, newest_run_id: str, identity: str) -> None:
    for key, value in {SUPERSEDED_TAG: newest_run_id, "lab2.superseded_identity": identity}.items():
        try:
            client().set_tag(run_id, key, value)
        except (MlflowException, IntegrityError):
            if client().get_run(run_id).data.tags.get(key) != value:  # else a concurrent process set it first
                raise
    try:
        client().delete_tag(run_id, IDENTITY_TAG)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise


def _age(run: Run) -> tuple[int, str]:
    return (run.info.end_time or 0, run.info.run_id)

