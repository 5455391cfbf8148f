"""A Dask scheduler and workers on loopback ports, each a process group of its own."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab2.cli import processes
from tests.helpers.processes import end_group, start_in_group


@dataclass
class DaskCluster:
    """A `dask scheduler` and its `dask worker`s, each a process group of its own; workers by their
    address."""

    address: str
    scheduler: subprocess.Popen
    workers: dict[str, subprocess.Popen]


@contextmanager
def dask_cluster(
    client_env: Mapping[str, str], folder: Path, n_workers: int = 2
) -> Iterator[DaskCluster]:
    """A Dask scheduler and `n_workers` single-threaded workers on 127.0.0.1; each worker's
    environment holds only `client_env` (PREFECT_API_URL, MLFLOW_TRACKING_URI) beside PATH and
    HOME."""
    port = processes.free_port()
    base = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(folder)),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    dask = processes.console_script("dask")
    scheduler = start_in_group(
        [
            dask,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            "127.0.0.1:0",
        ],
        base,
        folder / "scheduler.log",
    )
    address, workers = f"tcp://127.0.0.1:{port}", {}
    try:
        _wait_port(port)
        for index in range(n_workers):
            worker_port = processes.free_port()
            command = [
                dask,
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--worker-port",
                str(worker_port),
                "--nthreads",
                "1",
                "--dashboard-address",
                "127.0.0.1:0",
                "--name",
                f"w{index}",
                "--local-directory",
                str(folder / f"w{index}"),
            ]
            workers[f"tcp://127.0.0.1:{worker_port}"] = start_in_group(
                command, {**base, **client_env}, folder / f"worker-{index}.log"
            )
        _wait_workers(address, n_workers)
        yield DaskCluster(address, scheduler, workers)
    finally:
        for process in [*workers.values(), scheduler]:
            end_group(process)


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def _wait_workers(address: str, n_workers: int, timeout: float = 120.0) -> None:
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(n_workers, timeout=timeout)
