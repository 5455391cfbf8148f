"""Every LAB2_* environment variable lab2 reads, with its default and what it allows: one
pydantic-settings class, read when a value is needed (so a variable set by the process itself
counts)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from lab2.core.errors import InputError

PREFIX = "LAB2_"


class Lab2Settings(BaseSettings):
    """lab2's environment; an unset or empty variable takes the default."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, frozen=True)

    max_hours: float = Field(
        24, gt=0, allow_inf_nan=False, description="the longest run lab2 starts, in hours"
    )
    tracking_retry_seconds: float = Field(
        60, ge=0, allow_inf_nan=False, description="how long a tracking call is retried"
    )
    stack_dir: Path = Field(Path(".lab2-stack"), description="the stack's state, stores and logs")
    host: str = Field("127.0.0.1", min_length=1, description="the address the stack listens on")
    prefect_port: int = Field(4200, ge=1, le=65535, description="the stack's Prefect server port")
    mlflow_port: int = Field(5000, ge=1, le=65535, description="the stack's MLflow server port")
    postgres_url: str | None = Field(
        None, description="postgresql://USER:PASSWORD@HOST:PORT for both servers' records"
    )

    @property
    def max_seconds(self) -> float:
        return 3600 * self.max_hours


def env_name(field: str) -> str:
    """The variable behind a field: "max_hours" → "LAB2_MAX_HOURS"."""
    return PREFIX + field.upper()


def settings() -> Lab2Settings:
    """The environment's settings now; InputError names each bad variable and what it allows."""
    try:
        return Lab2Settings()
    except ValidationError as error:
        problems = [
            f"{env_name(str(e['loc'][0]))}={e['input']!s}: {e['msg']}" for e in error.errors()
        ]
        raise InputError("; ".join(problems)) from None
