"""A throwaway PostgreSQL server for the tests that need a real one (`ai-ready accept --db postgresql://...`).

Debian's PostgreSQL binaries (``/usr/lib/postgresql/<version>/bin``, package ``postgresql``) initialise a
cluster in a fresh temporary folder and serve it on a unix socket there only (no TCP), as the
``postgres`` user when the tests run as root (PostgreSQL refuses to run as root). Stopped and removed at
the end of the session. Tests skip, with the reason, only where no server can be started.

Use it by importing the fixture into a test module: ``from helpers.postgres import postgres_url``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

#: Seconds pg_ctl waits for the server to accept connections.
START_TIMEOUT_S = 60
SERVER_USER = "postgres"
#: Short: a unix socket path must fit in about 100 bytes.
TMP_PREFIX = "/tmp/ai-ready-pg-"


def pg_bin() -> Path | None:
    """The newest Debian PostgreSQL bin folder, else one on PATH."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """initdb + pg_ctl start in a temporary folder; `url` is an SQLAlchemy URL for its `postgres` database."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.port = _free_port()
        self.bin = pg_bin()
        self.as_root = os.geteuid() == 0

    @property
    def data(self) -> Path:
        assert self.folder is not None
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{SERVER_USER}@/postgres?host={self.folder}&port={self.port}"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", SERVER_USER, "--"] if self.as_root else []
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=START_TIMEOUT_S + 30,
                              stdin=subprocess.DEVNULL)

    def start(self) -> str | None:
        """Start the server; returns why it cannot start, or None."""
        if self.bin is None:
            return "no PostgreSQL binaries (apt-get install postgresql)"
        if self.as_root:
            try:
                account = pwd.getpwnam(SERVER_USER)
            except KeyError:
                return f"tests run as root and there is no '{SERVER_USER}' user to run the server as"
            if shutil.which("runuser") is None:
                return "tests run as root and runuser is missing to start the server as postgres"
        self.folder = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
        if self.as_root:
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self.folder.chmod(0o700)
        init = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", SERVER_USER,
                         "-E", "UTF8", "--no-sync")
        if init.returncode != 0:
            return f"initdb failed: {init.stderr.strip()[-300:]}"
        options = f"-k {self.folder} -p {self.port} -c listen_addresses='' -c fsync=off -c max_connections=50"
        started = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                            str(self.folder / "server.log"), "-w", "-t", str(START_TIMEOUT_S), "start")
        if started.returncode != 0:
            log_file = self.folder / "server.log"
            log = log_file.read_text(errors="replace")[-300:] if log_file.exists() else ""
            return f"pg_ctl start failed: {started.stderr.strip()[-300:]} {log}"
        return None

    def stop(self) -> None:
        if self.folder is None:
            return
        if self.bin is not None and self.data.exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A URL of a fresh PostgreSQL database for this test session; skips with the reason if none can start."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'ai-ready[postgres]')")
    server = PostgresServer()
    try:
        why = server.start()
    except (OSError, subprocess.SubprocessError) as exc:
        why = f"{type(exc).__name__}: {exc}"
    if why is not None:
        server.stop()
        pytest.skip(f"PostgreSQL cannot be started here: {why}")
    try:
        yield server.url
    finally:
        server.stop()


def fresh_database(url: str, name: str) -> str:
    """Create database `name` on the server of `url` (dropping an old one) and return its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    query = dict(parsed.query)
    with psycopg.connect(host=query["host"], port=int(query["port"]), user=parsed.username, dbname=parsed.database,
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return parsed.set(database=name).render_as_string(hide_password=False)
