"""The Prefect API that `lab2 run` talks to: the one the user set, or a temporary one started early.

Prefect starts a temporary API on the first flow call when PREFECT_API_URL is unset; that costs the
import of its whole server in this process and a start that nothing overlaps. `lab2 run` instead
starts the same server (Prefect's own uvicorn command) as its first act, so that it boots while this
process imports torch and MLflow and loads the data, and points PREFECT_API_URL at it before Prefect
is imported.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

STARTUP_TIMEOUT_SECONDS = 120.0
_SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline, its telemetry would log an ERROR
}


@dataclass
class TemporaryAPI:
    """A Prefect API server on 127.0.0.1 in its own process group, for one `lab2 run`."""

    url: str
    process: subprocess.Popen

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Block until the API answers /health; fail naming the URL if it exits or never answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the temporary Prefect API at {self.url} exited with status {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the temporary Prefect API at {self.url} did not answer within {timeout:.0f} s")

    def stop(self, grace: float = 5.0) -> None:
        """End the server's whole process group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_temporary_api() -> TemporaryAPI | None:
    """Start a temporary Prefect API and point this process at it, unless PREFECT_API_URL is already set."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on",
    ]
    process = subprocess.Popen(command, env={**os.environ, **_SERVER_ENV}, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = url
    os.environ["PREFECT_UI_URL"] = ""  # it serves no UI: no "View at" links to a page that is not there
    return TemporaryAPI(url, process)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
