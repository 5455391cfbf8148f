"""lab2 installed as a package, not from the checkout: the wheel in a fresh virtual environment runs
the lab twice in a fresh folder, and the second run reuses every unit."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers.checkout import ROOT
from tests.helpers.lab2_runs import lab2_env
from tests.helpers.mlflow_runs import all_runs

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding lab2's wheel; its other packages are this environment's (a .pth file
    names them), so nothing heavy is installed again. Returns the venv's bin folder."""
    root = tmp_path_factory.mktemp("installed")
    wheels = root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(ROOT)],
        check=True,
    )  # fmt: skip
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # This environment's packages, but not its editable hook onto the checkout (a .pth line names
    # a folder; the hook is itself a .pth file there, which Python does not process from it).
    Path(site, "stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (wheel,) = wheels.glob("lab2-*.whl")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True
    )
    return venv / "bin"


def test_the_wheel_imports_lab2_from_its_own_site_packages(installed):
    where = subprocess.run(
        [installed / "python", "-c", "import lab2.core.identity as i; print(i.__file__)"],
        check=True, capture_output=True, text=True, cwd="/",
    ).stdout.strip()  # fmt: skip
    assert "site-packages/lab2/core/identity.py" in where and str(installed.parent) in where


def test_the_installed_lab2_runs_twice_and_the_second_run_reuses_every_unit(installed, tmp_path):
    env = lab2_env(tmp_path / "prefect", MPLBACKEND="Agg")
    for _ in range(2):
        done = subprocess.run(
            [installed / "lab2", "run"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "0 computed, 22 reused" in done.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parents = [r for r in all_runs(client) if r.data.tags.get("lab2.role") == "pipeline"]
    assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in parents)
    second = max(parents, key=lambda r: r.info.start_time)
    assert second.data.tags["lab2.rerun_of"] != second.info.run_id
    assert {k: v for k, v in second.data.tags.items() if k.endswith("units_computed")} == {
        "lab2.factorisation.units_computed": "0",
        "lab2.mlp_grid.units_computed": "0",
    }
