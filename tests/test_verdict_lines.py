"""The verdicts a person reads, as `lab2 run`, `lab2 compare` and `lab2 compare --pair` print them,
on the lab's grid, on 10 seeds and on 3 split seeds: a line of at most 100 columns and 25 words
per comparison, each caveat once, `--pair` in at most 8 lines."""

import re
import subprocess

import pytest

from tests.helpers.lab2_runs import LAB2, lab2_env, lab2_run

CONFIGURATIONS = {
    "defaults": [],
    "ten-seeds": ["--seeds", *map(str, range(10))],
    "three-split-seeds": ["--split-seeds", "0", "1", "2"],
}
VERDICT = re.compile(r"^ ?\d+\. (.+)$", re.MULTILINE)


def _verdicts(printed: str) -> list[str]:
    """The numbered verdict lines under "Verdicts:", with the caveats above them."""
    block = printed.split("Verdicts:\n")[1].split("\n\n")[0]
    lines = block.splitlines()
    assert VERDICT.findall(block) == [line.split(". ", 1)[1] for line in lines]  # a line each
    return lines


def _compare(folder, *args: str) -> str:
    env = lab2_env(folder / "prefect-home")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    done = subprocess.run(
        [LAB2, "compare", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _caveats(printed: str) -> list[str]:
    """The notes between the pair table's legend and its verdicts."""
    return printed.split("(over the sd's 95%")[1].split("Verdicts:")[0].splitlines()[1:]


@pytest.mark.system
@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_every_verdict_is_a_line_of_100_columns_and_25_words_each_caveat_once(
    tmp_path, prefect_api, name
):
    printed = {"run": lab2_run(tmp_path, prefect_api, *CONFIGURATIONS[name])}
    printed["compare"] = _compare(tmp_path)
    for command, said in printed.items():
        lines = _verdicts(said)
        assert len(lines) == 10, (command, lines)
        for line in lines:
            assert len(line) <= 100 and len(line.split(". ", 1)[1].split()) <= 25, line
        caveats = _caveats(said)
        assert len(caveats) == len(set(caveats)), caveats
    assert _verdicts(printed["run"]) == _verdicts(printed["compare"])

    pair = _compare(tmp_path, "--pair", "lr=0.1 it=1000", "lr=0.01 it=1000")
    lines = pair.splitlines()
    assert len(lines) <= 8, pair
    (verdict,) = [line for line in lines if line.startswith("lr=0.1 vs lr=0.01 at it=1000: ")]
    assert len(verdict) <= 100 and len(verdict.split()) <= 25
    assert all(len(line) <= 100 for line in lines if " " in line.strip())
    # the same comparison, the same words, as in the grid's table
    assert any(line.endswith(verdict.split(": ", 1)[1]) for line in _verdicts(printed["run"]))
    explained = _compare(tmp_path, "--pair", "lr=0.1 it=1000", "lr=0.01 it=1000", "--explain")
    assert verdict in explained and "Holm-step" in explained and "Why: " in explained
