"""A throwaway PostgreSQL server of a test's own, to stop and start at will.

The shared server on 5432 is never touched: this one is made with ``initdb`` in a temporary
directory owned by ``postgres`` (the tests run as root), listens on a free loopback port and
is stopped by the pid in its ``postmaster.pid``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

BIN = Path(os.environ.get("OCSD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def why_not() -> str | None:
    """None if a server of our own can be made here, else why not."""
    if not (BIN / "initdb").exists():
        return f"no initdb in {BIN} (set OCSD_TEST_PG_BIN)"
    if os.geteuid() != 0 and shutil.which("runuser") is None:
        return "needs root (to run initdb as postgres)"
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OwnPostgres:
    """initdb, start, stop (by pid), start again, remove."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ocsd-own-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(
            str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        self.start()

    def _as_postgres(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, *command], check=True, capture_output=True, timeout=120, cwd=self.root
        )

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        self._as_postgres(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w",
            "-t", "60", "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c max_connections=50",
            "start",
        )  # fmt: skip

    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster's pid): connections are cut and new ones
        refused until ``start``."""
        if self.pid() is None:
            return
        self._as_postgres(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
