"""The LAB2_* environment: one settings class reads every variable, says what a bad one allows, and
the docs name each of them."""

from __future__ import annotations

import re

import pytest

from lab2.cli.stack_services import StackConfig
from lab2.core.errors import InputError
from lab2.core.settings import Lab2Settings, env_name, settings
from tests.helpers.checkout import ROOT

TEST_ONLY = {"LAB2_MEASURE_SERIES"}  # read by a system test, not by lab2


def test_each_variable_is_read_and_an_empty_one_takes_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("LAB2_MAX_HOURS", "0.5")
    monkeypatch.setenv("LAB2_TRACKING_RETRY_SECONDS", "")
    monkeypatch.setenv("LAB2_STACK_DIR", str(tmp_path))
    monkeypatch.setenv("LAB2_PREFECT_PORT", "4300")
    found = settings()
    assert found.max_seconds == 1800
    assert (
        found.tracking_retry_seconds == Lab2Settings.model_fields["tracking_retry_seconds"].default
    )
    config = StackConfig.from_env()
    assert (config.data_dir, config.prefect_port, config.mlflow_port) == (tmp_path, 4300, 5000)


@pytest.mark.parametrize(
    "name, value, allowed",
    [
        ("LAB2_MAX_HOURS", "abc", "valid number"),
        ("LAB2_MAX_HOURS", "0", "greater than 0"),
        ("LAB2_MAX_HOURS", "inf", "finite number"),
        ("LAB2_TRACKING_RETRY_SECONDS", "-1", "greater than or equal to 0"),
        ("LAB2_MLFLOW_PORT", "70000", "less than or equal to 65535"),
    ],
)
def test_a_bad_variable_is_named_with_its_value_and_what_is_allowed(
    monkeypatch, name, value, allowed
):
    monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match=rf"{name}={re.escape(value)}: .*{allowed}"):
        settings()


def test_the_docs_name_every_variable_and_no_other():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = set(re.findall(r"\bLAB2_[A-Z_]+[A-Z]\b", "\n".join(p.read_text() for p in pages)))
    assert named - TEST_ONLY == {env_name(field) for field in Lab2Settings.model_fields}
