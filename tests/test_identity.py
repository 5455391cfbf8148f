"""The code version behind every identity: exactly the code that computes or records a unit's results."""

import shutil
from pathlib import Path

import pytest

from lab2.tasks.units import UNIT_CODE, code_version

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the sources, to edit without touching the real ones."""
    for folder in ("lab2core", "tasks", "flows", "cli"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")


def test_every_listed_file_exists():
    assert all((ROOT / name).is_file() for name in UNIT_CODE)


@pytest.mark.parametrize("name", ["lab2core/report.py", "lab2core/seeds.py", "lab2core/inputs.py", "flows/pipeline.py", "cli/main.py", "tasks/tracking/queries.py", "tasks/tracking/connection.py"])
def test_an_edit_outside_the_unit_code_keeps_every_identity(checkout, name):
    before = code_version.__wrapped__(checkout)
    _edit(checkout / name)
    assert code_version.__wrapped__(checkout) == before


@pytest.mark.parametrize("name", ["lab2core/mlp.py", "lab2core/factorise.py", "lab2core/plots.py", "tasks/record.py", "tasks/units.py", "tasks/tracking/runs.py"])
def test_an_edit_to_the_recipe_or_the_recording_changes_every_identity(checkout, name):
    before = code_version.__wrapped__(checkout)
    _edit(checkout / name)
    assert code_version.__wrapped__(checkout) != before


@pytest.mark.system
@pytest.mark.usefixtures("prefect_api")
def test_a_grid_run_after_a_report_only_edit_reuses_every_cell_and_after_an_mlp_recipe_edit_recomputes_them(
    checkout, mlflow_store, monkeypatch
):
    from lab2.flows.mlp_grid import mlp_grid
    from lab2.tasks import units

    unwrapped = code_version.__wrapped__
    monkeypatch.setattr(units, "code_version", lambda: unwrapped(checkout))  # identities from the edited copy
    grid = dict(lrs=(0.1,), iterations=(3, 6), seeds=(0, 1), cell_figures=False)

    def computed_and_reused() -> tuple[int, int]:
        table = mlp_grid(**grid).units
        return int((~table["reused"]).sum()), int(table["reused"].sum())

    assert computed_and_reused() == (4, 0)
    _edit(checkout / "lab2core/report.py")
    assert computed_and_reused() == (0, 4)
    _edit(checkout / "lab2core/mlp.py")
    assert computed_and_reused() == (4, 0)
