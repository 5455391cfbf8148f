"""`pytest -n N --dist loadgroup` that keeps a module's `xdist_group` tests on one worker with this
pytest.

pytest-xdist 3.8 groups tests by a `@group` suffix it writes into each test's node id on the
worker; pytest 9.2 builds node ids another way and the suffix never appears, so every test would
be scheduled alone and a module's shared servers started once per worker that runs one of its
tests. This scheduler (chosen in conftest.py) reads the group from the module instead: the
`xdist_group` mark in its module-level `pytestmark`. Node ids that do carry a suffix are grouped
by it, as xdist does.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from xdist.scheduler import LoadGroupScheduling


@cache
def module_group(path: Path) -> str | None:
    """The name in `pytest.mark.xdist_group("name")` of the module's `pytestmark`, if any."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            for call in ast.walk(node.value):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "xdist_group"
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                ):
                    return str(call.args[0].value)
    return None


class ModuleGroupScheduling(LoadGroupScheduling):
    """xdist's loadgroup, the group taken from the test module when the node id names none."""

    def __init__(self, config, log=None) -> None:
        super().__init__(config, log)
        self.rootpath = config.rootpath

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.rfind("@") > nodeid.rfind("]"):
            return super()._split_scope(nodeid)
        group = module_group(self.rootpath / nodeid.split("::", 1)[0])
        return group if group is not None else nodeid
