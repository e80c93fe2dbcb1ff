"""Real services for tests: a throwaway PostgreSQL server (Debian's ``postgresql`` package) in a
temporary folder, started once per test session and stopped afterwards.

Recipe: ``../shared/recipes/postgres-in-tests.md``. The server refuses to run as root, so when
the tests run as root it is started as the ``postgres`` system user (``runuser``).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def postgres_bindir() -> Path | None:
    """The folder with initdb and pg_ctl, or None when PostgreSQL is not installed."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 check=True).stdout.strip()
            if (Path(out) / "initdb").exists():
                return Path(out)
        except (OSError, subprocess.CalledProcessError):
            pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """``with PostgresServer() as pg: pg.url`` — a fresh cluster on a free local port."""

    def __init__(self, bindir: Path | None = None, user: str = "avmit"):
        self.bindir = bindir or postgres_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL is not installed: run bash scripts/setup.sh "
                               "(it installs Debian's postgresql package)")
        self.user = user
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="avmit-pg-"))
        self.data = self.dir / "data"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args) -> None:
        subprocess.run([*self._as, *map(str, args)], check=True, capture_output=True, text=True)

    def start(self) -> "PostgresServer":
        if self._as:
            shutil.chown(self.dir, user="postgres")
        self._run(self.bindir / "initdb", "-D", self.data, "-A", "trust", "-U", self.user)
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.dir / "log", "-w", "start",
                  "-o", f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 "
                        "-c max_connections=200 -c fsync=off")
        return self

    def stop(self) -> None:
        try:
            self._run(self.bindir / "pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database on this server; its SQLAlchemy URL."""
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
