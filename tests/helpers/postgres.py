"""A PostgreSQL cluster of the tests' own, from Debian's server programs, on a free loopback
port."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab2.cli import processes


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server programs (initdb, pg_ctl), newest version first."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]),
        reverse=True,
    )
    return Path(found[0]).parent if found else None


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL cluster: its server URL (superuser lab2 with a password) and data
    folder."""

    url: str
    password: str
    port: int
    folder: Path


@contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """A PostgreSQL cluster of its own (initdb in a temporary folder, password auth, 127.0.0.1 on a
    free port), stopped and removed on exit. As root, the server runs as the `postgres` account,
    since it refuses root."""
    programs = postgres_bin()
    if programs is None:
        raise RuntimeError(
            "PostgreSQL's server is not installed (initdb under /usr/lib/postgresql/*/bin); "
            "`make test` installs it"
        )
    folder = Path(tempfile.mkdtemp(prefix="lab2-pg-"))
    data, password, port = folder / "data", secrets.token_urlsafe(16), processes.free_port()
    (folder / "pw").write_text(password + "\n")
    as_user: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        shutil.chown(folder, account.pw_uid, account.pw_gid)
        shutil.chown(folder / "pw", account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

    def run(*command: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*as_user, *map(str, command)], env=env, check=True, capture_output=True, text=True
        )

    run(
        programs / "initdb",
        "-D",
        data,
        "-U",
        "lab2",
        "--auth=scram-sha-256",
        f"--pwfile={folder / 'pw'}",
        "-E",
        "UTF8",
    )
    (folder / "pw").unlink()
    options = f"-p {port} -h 127.0.0.1 -k {folder} -c max_connections=200"
    run(
        programs / "pg_ctl",
        "-D",
        data,
        "-l",
        folder / "server.log",
        "-o",
        options,
        "-w",
        "-t",
        "60",
        "start",
    )
    try:
        yield Postgres(f"postgresql://lab2:{password}@127.0.0.1:{port}", password, port, folder)
    finally:
        run(programs / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(folder, ignore_errors=True)
