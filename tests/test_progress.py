"""`lab2 run`'s progress line when the output is a file or a pipe: periodic lines, and one when
every cell is logged."""

import io
import logging
import time

from lab2.cli import progress


def _counts(trained: int, logged: int, cells: int = 4) -> None:
    logging.getLogger("lab2.progress").info(
        "counts", extra={"trained": trained, "logged": logged, "cells": cells}
    )


def test_plain_lines_come_every_period_with_the_time_left_and_once_at_the_end(monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY_SECONDS", 0.05)
    out = io.StringIO()
    with progress.progress_line(out):
        _counts(0, 0)
        _counts(4, 0)
        time.sleep(0.3)
        _counts(4, 4)
        _counts(4, 4)  # the grid's last report repeats the final counts
    lines = out.getvalue().splitlines()
    assert any(
        line.startswith("lab2: cells trained 4/4, logged 0/4, ") and "left" in line
        for line in lines[:-1]
    )
    assert [line for line in lines if "logged 4/4" in line] == [lines[-1]] and "left" not in lines[
        -1
    ]
    assert not logging.getLogger("lab2.progress").handlers  # nothing listens once the run is over
