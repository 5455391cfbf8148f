"""What lab2 writes to MLflow is named in one place: no other module spells a tag or an artifact."""

import ast
import importlib.util
from pathlib import Path

import yaml

import lab2.tasks.layout as layout
from tests.helpers.checkout import ROOT

# The hand-written script the benchmark measures lab2 against names its runs as a user would.
BASELINE = ROOT / "benchmarks" / "handwritten_lab.py"
SOURCES = [
    p
    for folder in ("lab2core", "tasks", "flows", "cli", "benchmarks")
    for p in (ROOT / folder).rglob("*.py")
    if p != BASELINE
]
ARTIFACT_SUFFIXES = (".csv", ".html", ".md", ".json", ".txt", ".png")
# Files lab2 reads or keeps for itself (its reference numbers, its stack's state), and patterns.
NOT_MLFLOW = {
    "iris.csv",
    "claims.csv",
    "report_numbers.csv",
    "report_reconstruction.csv",
    "stack.json",
    "last_run.json",
    ".csv",
    ".png",
    "*.csv",
}


def _literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _layout_names() -> set[str]:
    return {
        value
        for name, value in vars(layout).items()
        if name.isupper() and isinstance(value, str) and "." in value
    }


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_no_module_but_the_layout_spells_a_name_it_defines():
    names = _layout_names()
    assert len(names) > 30
    found = {
        (str(p.relative_to(ROOT)), s)
        for p in SOURCES
        if p.name != "layout.py"
        for s in _literals(p)
        if s in names
    }
    assert found == set()


def test_no_module_but_the_layout_spells_a_tag_or_an_artifact():
    found = set()
    for path in SOURCES:
        if path.name == "layout.py" or "reference" in path.parts:
            continue
        for s in _literals(path):
            tag_like = (
                s.startswith("lab2.") and " " not in s and not _is_module(s.rsplit(".", 1)[0])
            )
            artifact_like = s.endswith(ARTIFACT_SUFFIXES) and " " not in s and "/" not in s[:1]
            if (tag_like or artifact_like) and s not in NOT_MLFLOW:
                found.add((str(path.relative_to(ROOT)), s))
    assert found == set()


def test_the_automation_listens_for_the_event_the_watch_emits():
    spec = yaml.safe_load((ROOT / "automations.yaml").read_text())
    assert spec["trigger"]["expect"] == [layout.CHANGED_EVENT]
