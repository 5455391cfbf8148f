"""Units of work and their reuse: identity, plan, record, settle.

A unit is one GD factorisation, one SVD baseline or one MLP cell, written as one child run. Its identity
hashes its logged params, the digest of its input data and the code version (UNIT_CODE, hashed); the
run carries it as tag lab2.identity. A flow plans its units (a FINISHED run of an identity is reused,
the rest computed), records them as a table on its parent run, and settles each identity on one run.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Generic, TypeVar

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from lab2.core.identity import source_digest, unit_identity
from lab2.tasks import tracking
from lab2.tasks.tracking import FinishedRun, RunRecord

K = TypeVar("K", bound=Hashable)
_ROOT = Path(__file__).resolve().parent.parent

# The code that computes a unit's results or decides what its run records: an edit here starts afresh.
# Summaries over units (seeds.py, report.py), input checks and the flows' wiring are not in it.
UNIT_CODE = (
    "lab2core/data.py",
    "lab2core/factorise.py",
    "lab2core/identity.py",
    "lab2core/mlp.py",
    "lab2core/params.py",
    "lab2core/plots.py",
    "tasks/compute.py",
    "tasks/record.py",
    "tasks/units.py",
    "tasks/tracking/runs.py",
)
UNITS_COLUMNS = ["step", "name", "identity", "run_id", "reused"]


@lru_cache(maxsize=1)
def code_version(root: Path = _ROOT) -> str:
    """Hash of UNIT_CODE under `root`: the code version of every unit's identity."""
    return source_digest([root / name for name in UNIT_CODE], root)


def identity_of(step: str, params: Mapping[str, object], data_digest: str) -> str:
    """The identity of a unit of `step` with these params on data of this digest, at this code version."""
    return unit_identity(step, params, data_digest, code_version())


@dataclass(frozen=True)
class UnitPlan(Generic[K]):
    """A flow's units by key: each one's identity, and the FINISHED runs reused for some of them."""

    identities: Mapping[K, str]
    reused: Mapping[K, FinishedRun]

    @property
    def to_compute(self) -> list[K]:
        """The units without a run to reuse, in the order of `identities`."""
        return [key for key in self.identities if key not in self.reused]

    def table(self, steps: Mapping[K, str], names: Mapping[K, str], run_ids: Mapping[K, str]) -> pd.DataFrame:
        """One row per unit: step, name, identity, run id, reused or not."""
        rows = [
            {"step": steps[k], "name": names[k], "identity": identity, "run_id": run_ids[k], "reused": k in self.reused}
            for k, identity in self.identities.items()
        ]
        return pd.DataFrame(rows, columns=UNITS_COLUMNS)


@task(cache_policy=NO_CACHE)
def plan_units(experiment: str, identities: Mapping[K, str], force: bool = False) -> UnitPlan[K]:
    """Which units a FINISHED run of their identity in `experiment` already holds; with `force`, none."""
    found = {} if force else tracking.finished_units(experiment, identities.values())
    return UnitPlan(dict(identities), {key: found[identity] for key, identity in identities.items() if identity in found})


@task(cache_policy=NO_CACHE)
def record_units(parent_run_id: str, flow_name: str, units: pd.DataFrame) -> None:
    """Every unit of a flow with its run and whether it was reused (tags `lab2.{flow}.units_reused`/`_computed`,
    units/{flow}.csv); then each identity is left on one FINISHED run only."""
    reused = int(units["reused"].sum()) if len(units) else 0
    tags = {f"lab2.{flow_name}.units_reused": reused, f"lab2.{flow_name}.units_computed": len(units) - reused}
    tracking.log_to_run(parent_run_id, RunRecord(tags=tags))
    tracking.log_text(parent_run_id, units.to_csv(index=False), f"units/{flow_name}.csv")
    tracking.settle_identities(parent_run_id, units["identity"].tolist())
