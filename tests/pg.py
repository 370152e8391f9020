"""A real, throw-away PostgreSQL server for tests: ``initdb`` into a temporary folder, ``pg_ctl start``
on a free 127.0.0.1 port, stopped and deleted at the end.

Debian's ``postgresql`` package (``make system-deps``) provides the binaries under
``/usr/lib/postgresql/<major>/bin``; ``LAB2LAND_PG_BIN`` or ``pg_config --bindir`` can point
elsewhere. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` system
user the Debian package creates (or a ``lab2land-pg`` system user made here if it is missing).

Tests skip with the reason when the binaries cannot be found, except under CI (``CI`` set), where
``make test`` installs them and their absence is a broken set-up, so they fail instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import free_port

SUPERUSER = "lab2land"


def find_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, newest major version first, or None."""
    candidates = [os.environ.get("LAB2LAND_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    candidates.append(str(Path(shutil.which("initdb") or "/nonexistent").parent))
    for folder in filter(None, candidates):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _service_user() -> str | None:
    """None when not root; otherwise a system user the server can run as (created if needed)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "lab2land-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "lab2land-pg"],
                   check=True, capture_output=True)
    return "lab2land-pg"


@dataclass
class PostgresServer:
    """A running server; ``url(db)`` gives a SQLAlchemy URL (psycopg 3 driver)."""

    bindir: Path
    root: Path
    port: int
    user: str | None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", self.user, "--"] if self.user else []) + list(args)

    def _run(self, *args: str) -> None:
        proc = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = (self.root / "server.log")
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}\n{tail}")

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(self.root, self.user)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")
        for attempt in range(3):  # another process may take the free port before the server binds it
            # Loopback TCP only; the socket goes to our own folder, not /var/run/postgresql.
            options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                          str(self.root / "server.log"), "-w", "-t", "60", "-o", options, "start")
                return
            except RuntimeError:
                if attempt == 2:
                    raise
                self.port = free_port()

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                                     "-w", "stop"), capture_output=True, timeout=60)

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def postgres_server() -> Iterator[PostgresServer]:
    """Start a server for the duration of the generator (``conftest.postgres`` is the session fixture)."""
    bindir = find_bindir()
    if bindir is None:
        reason = ("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin, "
                  "$LAB2LAND_PG_BIN or PATH: run `make system-deps` (installs Debian's postgresql)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="lab2land-pg-"))  # not under pytest's 0700 tmp: the server user reads it
    server = PostgresServer(bindir, root, free_port(), _service_user())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
