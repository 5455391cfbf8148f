"""Every `lab2 …` command that README.md and docs/*.md show parses with the real CLI parser."""

import re
import shlex
from pathlib import Path

import pytest

from lab2.cli.main import parse

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`]+)`")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# a line that starts (after a prompt and VAR=value words) with a command named lab2; other lines,
# such as a quoted argument that spans lines, are not split
RUNS_LAB2 = re.compile(r"^(\$ )?([A-Za-z_][A-Za-z0-9_]*=\S+ +)*(\S*/)?lab2( |$)")
OUTPUT_BLOCKS = ("text",)  # blocks of what a command prints, not commands to type
HELP_FLAGS = ("-h", "--help")  # they print the help and exit 0, by design


def lab2_argv(line: str) -> list[str] | None:
    """The arguments of `line` if it runs lab2 (after any `$ ` prompt and VAR=value prefixes); None
    for other lines and for the name `lab2` alone, which names the flow, the run or the command."""
    if not RUNS_LAB2.match(line.strip()):
        return None
    words = shlex.split(line.strip().removeprefix("$ "), comments=True)
    while words and ENV_ASSIGNMENT.match(words[0]):
        words.pop(0)
    if len(words) < 2 or Path(words[0]).name != "lab2":
        return None
    return words[1:]


def block_lines(block: str) -> list[str]:
    """The lines of a code block, each `\\` continuation joined to its line."""
    return block.replace("\\\n", " ").splitlines()


def inline_spans(prose: str) -> list[str]:
    """The inline code spans of markdown prose; a span may wrap within its paragraph."""
    paragraphs = re.split(r"\n\s*\n", prose)
    return [span for p in paragraphs for span in INLINE_CODE.findall(" ".join(p.split("\n")))]


def page_commands(text: str) -> list[list[str]]:
    """The argv of every lab2 command a page shows, in code blocks and inline code."""
    lines = [
        line
        for kind, block in FENCE.findall(text)
        if kind not in OUTPUT_BLOCKS
        for line in block_lines(block)
    ]
    lines += inline_spans(FENCE.sub("", text))
    return [argv for line in lines if (argv := lab2_argv(line)) is not None]


COMMANDS = [
    pytest.param(argv, id=f"{page.relative_to(ROOT)}: lab2 {shlex.join(argv)}")
    for page in PAGES
    for argv in page_commands(page.read_text(encoding="utf-8"))
]


@pytest.mark.parametrize("argv", COMMANDS)
def test_shown_command_parses(argv: list[str]) -> None:
    """Each command shown parses and validates; `--help` ends in exit status 0."""
    if any(flag in argv for flag in HELP_FLAGS):
        with pytest.raises(SystemExit) as stop:
            parse(argv)
        assert stop.value.code == 0
        return
    parse(argv)


def test_commands_are_found() -> None:
    """The collection cannot pass empty: the pages show dozens of commands, the README its own."""
    readme = page_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(COMMANDS) >= 40
    assert len(readme) >= 10
    assert {argv[0] for argv in readme} >= {"run", "ui", "compare", "history", "report", "stack"}


def test_collection_reads_markdown() -> None:
    """Prompts, continuations, comments, VAR= prefixes and wrapped spans are read; output is not."""
    page = (
        "Try `lab2 run\n--seeds 0 1`, then `lab2.group`.\n\n"
        "```sh\n$ LAB2_X=1 lab2 compare \\\n  --metric val_loss   # a comment\n```\n"
        "```text\nlab2 run: bad input: --lrs -1\n```\n"
    )
    assert page_commands(page) == [
        ["compare", "--metric", "val_loss"],
        ["run", "--seeds", "0", "1"],
    ]


@pytest.mark.parametrize(
    "line",
    ["lab2 run --lrs abc", "lab2 run --lrs -1", "lab2 run --lrs", "lab2 compare --min-effect 0"],
)
def test_bad_command_is_refused(line: str) -> None:
    """A bad line fails to parse with exit status 2, so a wrong command on a page would fail."""
    argv = lab2_argv(line)
    assert argv is not None
    with pytest.raises(SystemExit) as stop:
        parse(argv)
    assert stop.value.code == 2
