"""No line of the project's Python is over 100 columns: ruff's E501 lets a line that is one long
URL pass, and a reader's screen does not."""

from tests.helpers.checkout import ROOT

FOLDERS = ("lab2core", "tasks", "flows", "cli", "tests", "benchmarks")
LIMIT = 100


def test_no_python_line_is_over_100_columns():
    sources = [p for folder in FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(sources) > 100
    long_lines = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if len(line) > LIMIT
    ]
    assert long_lines == []
