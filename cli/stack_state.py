"""stack.json in the data directory: where the stack listens ("stack") and each service's pid, log and port ("services")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

STATE_FILE = "stack.json"


def _read(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return {}


def read_settings(data_dir: Path) -> dict:
    """Where the stack recorded in `data_dir` listens and keeps its records ({} if none is recorded)."""
    return _read(data_dir).get("stack", {})


def read_services(data_dir: Path) -> dict[str, dict]:
    """The services recorded in `data_dir`, by name ({} if none is recorded)."""
    return _read(data_dir).get("services", {})


def write_state(data_dir: Path, settings: Mapping[str, object], services: Mapping[str, dict]) -> None:
    """Record the stack's settings (nothing secret) and its services in `data_dir`."""
    (data_dir / STATE_FILE).write_text(json.dumps({"stack": settings, "services": services}, indent=2))
