"""The code version behind every identity: the recipe that computes or records a unit, not the files
around it."""

import shutil
from pathlib import Path

import pytest

from lab2.core import identity
from lab2.core.identity import RECIPE, code_version, recipe_digests, unit_identity

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"lab2.core": "lab2core", "lab2.tasks": "tasks", "lab2.flows": "flows", "lab2.cli": "cli"}


def _folders(root: Path) -> dict[str, Path]:
    """lab2's packages as laid out under `root` (a checkout, or a copy of one)."""
    return {package: root / folder for package, folder in FOLDERS.items()}


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the sources, to edit without touching the real ones."""
    for folder in ("lab2core", "tasks", "flows", "cli"):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    return tmp_path


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new))


# Edits that keep every identity: help text, descriptions, rendering, docstrings and comments of the
# recipe, the CLI.
KEEPING = {
    "a flow parameter's help": (
        "lab2core/params.py",
        'description="MLP hidden units"',
        'description="hidden units of the MLP"',
    ),
    "a run description": (
        "lab2core/describe.py",
        "(loss not finite).",
        "(the loss is not finite).",
    ),
    "the seed table's rounding": (
        "lab2core/describe.py",
        "f\"{row[f'{metric}_mean']:.3f}",
        "f\"{row[f'{metric}_mean']:.4f}",
    ),
    "a verdict's words": (
        "lab2core/verdicts.py",
        'f"cannot tell {first}',
        'f"cannot yet tell {first}',
    ),
    "the CLI": ("cli/main.py", '"run the whole pipeline', '"run the lab'),
    "a recipe docstring": (
        "lab2core/mlp.py",
        "The lab's init: W1 then W2",
        "The lab's initialisation: W1, then W2",
    ),
    "a recipe comment": (
        "lab2core/mlp.py",
        "# Biases carry a row axis",
        "# The biases carry a row axis",
    ),
    "a check beside the recipe": (
        "lab2core/factorise.py",
        '    """Raise InputError unless',
        '    """Refuse, with InputError, unless',
    ),
}
# Edits that change every identity: what computes a unit's numbers or figures, or what its run
# records.
CHANGING = {
    "the MLP init": (
        "lab2core/mlp.py",
        "w2 = torch.rand(hidden, n_classes, generator=g)",
        "w2 = torch.rand(hidden, n_classes, generator=g) * 1.0",
    ),
    "the scaling": (
        "lab2core/data.py",
        "return (features - mean) / spread",
        "return (features - mean) / spread / 1",
    ),
    "the factorisation": ("lab2core/factorise.py", "u -= step * u_grad", "u -= u_grad * lr"),
    "a unit figure": (
        "lab2core/plots.py",
        'ax.set(xlabel="step", ylabel="training loss (cross-entropy)")',
        'ax.set(xlabel="step", ylabel="loss")',
    ),
    "a unit's recorded metrics": (
        "tasks/records.py",
        '"train_loss": cell.train_loss_history',
        '"loss": cell.train_loss_history',
    ),
    "how a history is logged": (
        "tasks/tracking/runs.py",
        "now, max(record.histories.get(k, {-1: 0})) + 1)",
        "now, 0)",
    ),
}


def test_the_sources_are_found_by_module_name_where_python_imports_them():
    from lab2.core.identity import module_file, package_folders

    folders = package_folders()
    assert folders == _folders(ROOT)  # this checkout is installed editable
    assert module_file("lab2.tasks.tracking.runs", folders) == ROOT / "tasks/tracking/runs.py"
    assert all("/" not in module for module in RECIPE)  # modules, not checkout paths


def test_every_recipe_definition_exists():
    assert len(code_version.__wrapped__(_folders(ROOT))) == 12
    assert sum(len(names) for names in RECIPE.values()) >= 30


@pytest.mark.parametrize("edit", KEEPING.values(), ids=KEEPING.keys())
def test_an_edit_outside_the_recipe_keeps_every_identity(checkout, edit):
    before = code_version.__wrapped__(_folders(checkout))
    _replace(checkout / edit[0], edit[1], edit[2])
    assert code_version.__wrapped__(_folders(checkout)) == before


@pytest.mark.parametrize("edit", CHANGING.values(), ids=CHANGING.keys())
def test_an_edit_to_the_recipe_changes_every_identity(checkout, edit):
    before = code_version.__wrapped__(_folders(checkout))
    _replace(checkout / edit[0], edit[1], edit[2])
    assert code_version.__wrapped__(_folders(checkout)) != before


def test_a_recipe_edit_is_traced_to_its_file(checkout):
    before = recipe_digests(_folders(checkout))
    _replace(checkout / "lab2core/mlp.py", "def init_mlp(", "def init_mlp(  ")  # same syntax tree
    assert recipe_digests(_folders(checkout)) == before
    _replace(checkout / "lab2core/mlp.py", "w1 = torch.rand(", "w1 = torch.randn(")
    assert [f for f in before if recipe_digests(_folders(checkout))[f] != before[f]] == [
        "lab2.core.mlp"
    ]


def test_the_environment_that_computes_a_unit_is_part_of_its_identity(monkeypatch):
    same = unit_identity("mlp", {"lr": 0.1}, "d1", "c1")
    assert (
        identity.compute_environment()["torch"].startswith("2.13.0")
        and unit_identity("mlp", {"lr": 0.1}, "d1", "c1") == same
    )
    upgraded = {**identity.compute_environment(), "torch": "2.14.0"}
    monkeypatch.setattr(identity, "compute_environment", lambda: upgraded)
    assert unit_identity("mlp", {"lr": 0.1}, "d1", "c1") != same


def test_a_recipe_definition_that_is_gone_is_named(checkout):
    _replace(checkout / "lab2core/mlp.py", "def init_mlp(", "def initial_weights(")
    with pytest.raises(LookupError, match="lab2.core.mlp defines no init_mlp"):
        code_version.__wrapped__(_folders(checkout))


@pytest.mark.system
@pytest.mark.usefixtures("prefect_api")
def test_a_grid_run_after_a_wording_edit_reuses_every_cell_and_after_a_recipe_edit_recomputes_them(
    checkout, mlflow_store, monkeypatch
):
    from lab2.core.params import GridParams
    from lab2.flows.mlp_grid import mlp_grid
    from lab2.tasks import resume

    unwrapped = code_version.__wrapped__
    # identities from the edited copy
    monkeypatch.setattr(resume, "code_version", lambda: unwrapped(_folders(checkout)))
    grid = GridParams(lrs=(0.1,), iterations=(3, 6), seeds=(0, 1), cell_figures=False)

    def computed_and_reused() -> tuple[int, int]:
        table = mlp_grid(grid).units
        return int((~table["reused"]).sum()), int(table["reused"].sum())

    assert computed_and_reused() == (4, 0)
    for edit in KEEPING.values():
        _replace(checkout / edit[0], edit[1], edit[2])
    assert computed_and_reused() == (0, 4)
    _replace(checkout / CHANGING["the MLP init"][0], *CHANGING["the MLP init"][1:])
    assert computed_and_reused() == (4, 0)


def _key(root: Path, data: Path, **params: object) -> str:
    from lab2.core.identity import run_key
    from lab2.core.params import EXECUTION_ONLY, Lab2Params

    return run_key(
        Lab2Params(**params).model_dump(exclude=set(EXECUTION_ONLY)), data, _folders(root)
    )


def test_a_whole_runs_key_follows_its_params_data_and_every_source_but_not_how_it_runs(
    checkout, tmp_path
):
    from lab2.core.identity import data_file
    from lab2.core.params import Lab2Params

    data = tmp_path / "data.csv"
    data.write_text("a,b,label\n1,2,x\n3,4,y\n")
    key = _key(checkout, data)
    # how it runs
    assert _key(checkout, data, task_runner="processes", torch_threads=2, force=True) == key
    assert _key(checkout, data, seeds=(0, 1)) != key
    _replace(
        checkout / "lab2core/describe.py",
        "(loss not finite).",
        "(the loss is not finite).",
    )
    assert _key(checkout, data) != key  # a description is a result of the run, not of its units
    edited = _key(checkout, data)
    data.write_text("a,b,label\n1,2,x\n3,5,y\n")
    assert _key(checkout, data) != edited
    # scikit-learn's bundled copy
    assert data_file("iris") == data_file("iris-uci") and data_file("iris").is_file()
    assert Lab2Params(dataset="iris-uci").run_key() != Lab2Params().run_key()  # the name is a param
