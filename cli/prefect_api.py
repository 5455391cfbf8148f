"""The Prefect API of `lab2 run`: the one the user set, a running lab2 stack's, or a temporary one
started early.

Prefect starts a temporary API on the first flow call when PREFECT_API_URL is unset; that costs
the import of its whole server in this process and a start that nothing overlaps. `lab2 run`
instead starts the same server (Prefect's own uvicorn command) as its first act, so that it boots
while this process imports torch and MLflow and loads the data, and points PREFECT_API_URL at it
before Prefect is imported.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import AbstractContextManager
from dataclasses import dataclass

from lab2.cli.processes import free_port
from lab2.cli.stack_services import StackConfig, read_services

STARTUP_TIMEOUT_SECONDS = 120.0
_PR_SET_PDEATHSIG = 1  # prctl(2)
_SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline, its telemetry would log an ERROR
}


@dataclass
class TemporaryAPI:
    """A Prefect API server on 127.0.0.1 for one `lab2 run`, ending with it."""

    url: str
    process: subprocess.Popen

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Block until the API answers /health; fail naming the URL if it exits or never answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the temporary Prefect API at {self.url} exited with status "
                    f"{self.process.returncode}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"the temporary Prefect API at {self.url} did not answer within {timeout:.0f} s"
        )

    def flow_settings(self) -> AbstractContextManager:
        """Prefect settings for flows run against this API: no flow-run heartbeats. They let a
        server tell a crashed run from a live one, but this server ends with the process, and
        each flow run's end waits up to 1 s for its heartbeat thread's sleep."""
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})

    def stop(self, grace: float = 5.0) -> None:
        """End the server (uvicorn with one worker: a single process)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_temporary_api() -> TemporaryAPI | None:
    """Point this process at a Prefect API: PREFECT_API_URL if set, else the server of a `lab2
    stack` that is up, else a temporary one, started now (returned)."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    if stack := _running_stack():
        os.environ["PREFECT_API_URL"], os.environ["PREFECT_UI_URL"] = (
            stack.prefect_api_url,
            stack.prefect_ui_url,
        )
        print(
            f"lab2: flow runs on the Prefect server of the lab2 stack in {stack.data_dir}",
            flush=True,
        )
        return None
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    # In a session of its own, so that a terminal's Ctrl-C reaches lab2 alone (which still needs the
    # API to record the stop); on Linux it ends when lab2 ends, however lab2 ends.
    process = subprocess.Popen(
        command,
        env={**os.environ, **_SERVER_ENV},
        preexec_fn=_end_with_parent,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = url
    os.environ["PREFECT_UI_URL"] = (
        ""  # it serves no UI: no "View at" links to a page that is not there
    )
    return TemporaryAPI(url, process)


def _running_stack() -> StackConfig | None:
    """The `lab2 stack` found as `lab2 stack status` finds it ($LAB2_STACK_DIR, else ./.lab2-stack),
    if its Prefect server is recorded and answers, and the credentials it asks for (beyond
    127.0.0.1) are set."""
    try:
        stack = StackConfig.from_env()
    except (
        ValueError
    ):  # a port in LAB2_PREFECT_PORT or LAB2_MLFLOW_PORT that is not a number: `lab2 stack` says so
        return None
    if "prefect-server" not in read_services(stack.data_dir) or (
        stack.auth and not os.environ.get("PREFECT_API_AUTH_STRING")
    ):
        return None
    try:
        with urllib.request.urlopen(f"{stack.prefect_api_url}/health", timeout=2) as response:
            return stack if response.status == 200 else None
    except OSError:
        return None


def _end_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent process dies (elsewhere,
    nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
