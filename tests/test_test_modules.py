"""The tests' own shape: no test module imports another (or conftest); shared helpers live in
tests/helpers/."""

import ast

from tests.helpers.checkout import ROOT


def _imported(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_test_module_imports_another_test_module_or_conftest():
    modules = sorted((ROOT / "tests").rglob("*.py"))
    assert len(modules) > 30
    found = {
        (path.name, name)
        for path in modules
        for name in _imported(path)
        if name.startswith(("tests.test_", "tests.conftest")) or name in ("test_faults", "conftest")
    }
    assert found == set()
