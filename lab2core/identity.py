"""Identity of a unit of work: what it computes from, hashed, so a finished result can be found
again."""

from __future__ import annotations

import ast
import hashlib
import json
import threading
from collections.abc import Mapping
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a digest reads a tensor's bytes; finding a run by its identity needs no torch
    import torch

# lab2's packages. Their sources are found by module name, where Python imports them from: the
# installed package's folders, or the checkout's in an editable install.
PACKAGES = ("lab2.core", "lab2.tasks", "lab2.flows", "lab2.cli")
Folders = Mapping[str, Path]  # package name → the folder of its sources

# What computes a unit's numbers and figures, or decides what its run records: an edit to one of
# these definitions starts afresh. Docstrings, comments and everything else (descriptions,
# summaries, rendering, the CLI, the flows' wiring, the stack) keep every identity.
RECIPE = {
    "lab2.core.data": (
        "LAB_MATRIX",
        "_UCI_ROWS",
        "Dataset",
        "load_iris_dataset",
        "load_csv_dataset",
        "_read_csv",
        "labelled_frame",
        "centre",
        "split_rows",
        "scale",
        "factorisation_matrices",
    ),
    "lab2.core.factorise": (
        "reconstruction_loss",
        "factorise_gd",
        "truncated_svd",
        "principal_angles",
        "column_angles",
        "u_rows",
        "reconstruction_rows",
    ),
    "lab2.core.mlp": (
        "prepare_mlp_data",
        "_prepare",
        "init_mlp",
        "forward",
        "train_cells",
        "train_trajectories",
        "hits",
        "_mean_cross_entropy",
        "_read_off",
    ),
    "lab2.core.workload": ("CURVE_POINTS", "curve_steps"),
    "lab2.core.plots": (
        "plot_u_scatter",
        "_second_column",
        "plot_learning_curve",
        "_PlainLogFormatter",
    ),
    "lab2.core.identity": ("unit_identity", "tensor_digest"),
    "lab2.tasks.compute": ("compare_u",),
    "lab2.tasks.records": (
        "gd_params",
        "svd_params",
        "cell_params",
        "gd_record",
        "svd_record",
        "cell_record",
        "mlp_datasets",
        "matrix_dataset",
    ),
    "lab2.tasks.tracking.runs": ("log_to_run",),
}


# The packages a unit's numbers are computed with: an upgrade of one computes every unit again, and
# the run that follows says whether the numbers moved (lab2.core.watch). The torch thread count
# stays out: it is a parameter.
COMPUTE_PACKAGES = ("torch", "numpy")


def unit_identity(
    step: str, params: Mapping[str, object], data_digest: str, code_version: str
) -> str:
    """Hash of a unit's step, params (as logged, str values), input data digest, code version and
    the environment that computes it (Python and COMPUTE_PACKAGES versions)."""
    material = {
        "step": step,
        "params": {k: str(v) for k, v in sorted(params.items())},
        "data": data_digest,
        "code": code_version,
        "environment": compute_environment(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]


@lru_cache(maxsize=1)
def compute_environment() -> dict[str, str]:
    """Python's version and COMPUTE_PACKAGES' installed versions, read without importing them."""
    import platform
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        **{name: version(name) for name in COMPUTE_PACKAGES},
    }


def tensor_digest(tensor: torch.Tensor) -> str:
    """Short content hash of a tensor (dtype, shape and values)."""
    h = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    h.update(tensor.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def package_folders() -> dict[str, Path]:
    """Where Python imports each of lab2's packages from (found without importing them)."""
    folders = {}
    for package in PACKAGES:
        spec = find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise LookupError(f"package {package} is not installed")
        folders[package] = Path(next(iter(spec.submodule_search_locations)))
    return folders


def module_file(module: str, folders: Folders) -> Path:
    """The source file of one of lab2's modules ("lab2.core.mlp") in `folders`."""
    package = next(p for p in PACKAGES if module.startswith(f"{p}."))
    return (
        folders[package].joinpath(*module.removeprefix(f"{package}.").split(".")).with_suffix(".py")
    )


@lru_cache(maxsize=1)
def code_version(folders: Folders | None = None) -> str:
    """Hash of the RECIPE definitions (their syntax trees, docstrings left out), in `folders` or
    where lab2 is installed."""
    digests = recipe_digests(folders)
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:12]


def recipe_digests(folders: Folders | None = None) -> dict[str, str]:
    """Each RECIPE module's hash of its recipe definitions: which module an edit touched."""
    folders = folders or package_folders()
    digests = {}
    for module, names in RECIPE.items():
        found, h = _definitions(module_file(module, folders)), hashlib.sha256()
        for name in names:
            if name not in found:
                raise LookupError(f"{module} defines no {name}, which RECIPE names")
            h.update(f"{name}:{found[name]}".encode())
        digests[module] = h.hexdigest()[:12]
    return digests


# CPython 3.11's ast.parse is not safe in two threads at once (the grid's loggers ask together)
_PARSING = threading.Lock()


def _definitions(path: Path) -> dict[str, str]:
    """Top-level functions, classes and assignments of a module by name, as dumps of their syntax
    trees."""
    found: dict[str, str] = {}
    with _PARSING:
        tree = ast.parse(path.read_text())
    for node in tree.body:
        for part in ast.walk(node):
            body = getattr(part, "body", None)
            if (
                isinstance(part, (ast.FunctionDef, ast.ClassDef))
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
            ):
                part.body = body[1:] or [ast.Pass()]
        names = (
            [node.name]
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            else [
                t.id
                for t in getattr(node, "targets", [getattr(node, "target", None)])
                if isinstance(t, ast.Name)
            ]
        )
        found |= {name: ast.dump(node) for name in names}
    return found


# A whole pipeline run's results come from its params, its data file, every source file of lab2
# (summaries and descriptions too, not only the units' recipe) and the packages that compute and
# draw them.
RESULT_PACKAGES = (
    "torch",
    "numpy",
    "pandas",
    "scipy",
    "matplotlib",
    "scikit-learn",
    "mlflow",
    "prefect",
)


def run_key(params: Mapping[str, object], data_file: Path, folders: Folders | None = None) -> str:
    """The identity of a whole pipeline run: two runs with one key hold the same results. Read
    without importing torch or loading the data: the params (as dumped), the data file's bytes,
    lab2's sources, package versions."""
    from importlib.metadata import version

    folders = folders or package_folders()
    h = hashlib.sha256(_dumped(params))
    h.update(data_file.read_bytes())
    for package, folder in sorted(folders.items()):
        for path in sorted(folder.rglob("*.py")):
            h.update(f"{package}/{path.relative_to(folder)}\n".encode() + path.read_bytes())
    h.update(" ".join(version(name) for name in RESULT_PACKAGES).encode())
    return h.hexdigest()[:24]


def params_key(params: Mapping[str, object]) -> str:
    """A hash of parameters alone (as dumped): runs of the same experiment whatever their data, code
    or packages."""
    return hashlib.sha256(_dumped(params)).hexdigest()[:24]


def _dumped(params: Mapping[str, object]) -> bytes:
    return json.dumps({k: str(v) for k, v in sorted(params.items())}).encode()


def data_file(dataset: str) -> Path:
    """The file a dataset is read from: a CSV's path, or scikit-learn's bundled Iris file for the
    built-in ones (found without importing scikit-learn)."""
    from lab2.core.params import BUILTIN_DATASETS

    if dataset not in BUILTIN_DATASETS:
        return Path(dataset)
    sklearn = find_spec("sklearn")
    if sklearn is None or not sklearn.submodule_search_locations:
        raise ModuleNotFoundError(
            "scikit-learn, which holds the built-in Iris data, is not installed"
        )
    return Path(sklearn.submodule_search_locations[0], "datasets", "data", "iris.csv")
