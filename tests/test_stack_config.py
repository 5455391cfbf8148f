"""The stack's configuration without servers: where it is found, what it redacts, what it
refuses."""

from __future__ import annotations

import json
import re

import pytest

from lab2.cli import stack, stack_services
from lab2.cli.processes import free_port
from lab2.core.errors import InputError


def test_passwords_are_redacted_and_users_kept():
    assert (
        stack_services.redact_password("postgresql://lab2:s3cr:et@db:5432")
        == "postgresql://lab2:***@db:5432"
    )
    assert (
        stack_services.redact_password("postgresql://lab2@db:5432") == "postgresql://lab2@db:5432"
    )
    assert (
        stack_services.postgres_url("postgresql://u:p@db:5433", "lab2_prefect", "asyncpg")
        == "postgresql+asyncpg://u:p@db:5433/lab2_prefect"
    )


def test_the_stack_is_found_from_its_stack_json(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB2_STACK_DIR", str(tmp_path))
    monkeypatch.setenv("LAB2_PREFECT_PORT", "4999")
    config = stack_services.StackConfig(
        tmp_path, 4230, 5070, host="127.0.0.2", postgres="postgresql://u:pw@db:5432"
    )
    (tmp_path / "stack.json").write_text(json.dumps({"stack": config.settings(), "services": {}}))
    found = stack_services.StackConfig.from_env()
    assert (found.data_dir, found.prefect_port, found.mlflow_port, found.host) == (
        tmp_path,
        4230,
        5070,
        "127.0.0.2",
    )
    assert found.prefect_api_url == "http://127.0.0.2:4230/api" and found.auth
    assert "pw" not in (tmp_path / "stack.json").read_text() and "pw" not in repr(config)
    # an option wins
    assert stack_services.StackConfig.from_env(prefect_port=4300).prefect_port == 4300


def test_exported_urls_win_for_clients(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    urls = stack_services.client_urls(stack_services.StackConfig(tmp_path, 4230, 5070))
    assert urls == {
        "PREFECT_API_URL": "http://127.0.0.1:4230/api",
        "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000",
    }


@pytest.mark.parametrize(
    "postgres, message",
    [
        (
            "mysql://u:pw@db:3306",
            "--postgres mysql://u:***@db:3306: expected postgresql://USER:PASSWORD@HOST:PORT",
        ),
        (
            "postgresql://u:pw@db:5432/mine",
            "name the server only, no database; lab2 uses lab2_mlflow and lab2_prefect",
        ),
    ],
)
def test_a_postgres_url_lab2_cannot_use_is_refused(tmp_path, postgres, message):
    with pytest.raises(InputError, match=re.escape(message)):
        stack_services.check_config(stack_services.StackConfig(tmp_path, postgres=postgres))


def test_beyond_loopback_credentials_are_required(tmp_path, monkeypatch):
    for name in stack_services.CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    stack_services.check_config(stack_services.StackConfig(tmp_path))  # 127.0.0.1: none needed
    with pytest.raises(
        InputError,
        match="export MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD, PREFECT_API_AUTH_STRING",
    ):
        stack_services.check_config(stack_services.StackConfig(tmp_path, host="0.0.0.0"))


@pytest.mark.parametrize(
    "password, auth, message",
    [
        (
            "elevenchars",
            "lab2:secret",
            (
                r"MLFLOW_TRACKING_PASSWORD \(11 characters\) is refused by MLflow: Password must "
                r"be at least 12"
            ),
        ),
        ("twelve-chars", "lab2secret", "PREFECT_API_AUTH_STRING must be USER:PASSWORD"),
        ("twelve-chars", "lab2:", "PREFECT_API_AUTH_STRING must be USER:PASSWORD"),
    ],
)
def test_credentials_a_server_would_refuse_are_refused_before_anything_starts(
    tmp_path, monkeypatch, password, auth, message
):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "lab2")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", auth)
    with pytest.raises(InputError, match=message):
        stack_services.check_config(stack_services.StackConfig(tmp_path, host="0.0.0.0"))
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "twelve-chars")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "lab2:secret")
    stack_services.check_config(stack_services.StackConfig(tmp_path, host="0.0.0.0"))  # accepted


def test_status_of_an_authenticated_stack_needs_no_credentials(tmp_path, monkeypatch):
    for name in stack_services.CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    config = stack_services.StackConfig(
        tmp_path, free_port(), free_port(), host="127.0.0.2", timeout=1
    )
    (tmp_path / "stack.json").write_text(
        json.dumps(
            {
                "stack": config.settings(),
                "services": {
                    "mlflow-server": {
                        "pid": 2**22 + 1,
                        "log": "mlflow-server.log",
                        "port": config.mlflow_port,
                    }
                },
            }
        )
    )
    # reported, not a KeyError on a missing secret
    assert stack.status(config)["mlflow-server"]["running"] is False


def test_lab2_run_looks_for_a_stack_without_failing_on_a_port_that_is_not_a_number(
    tmp_path, monkeypatch
):
    from lab2.cli.prefect_api import _running_stack

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAB2_PREFECT_PORT", "not-a-port")
    assert _running_stack() is None  # no stack to use; `lab2 stack` itself names the bad port
