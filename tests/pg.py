"""Finding a PostgreSQL server for the suite: the configured one, the machine's, or one we
start with initdb/pg_ctl. Each test session gets a throwaway database on it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

HOW_TO_GET_ONE = (
    "no PostgreSQL reachable: set CAMPAIGN_SYNC_TEST_PG_URL to an admin URL "
    "(e.g. postgresql://root@127.0.0.1:5432/postgres), or install PostgreSQL's server "
    "binaries (initdb, pg_ctl) so the suite can start its own"
)


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("select 1")
        return True
    except psycopg.Error:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


class PostgresServer:
    """An admin URL to a server, and the private server we started, if any."""

    def __init__(self) -> None:
        self.admin_url: str | None = None
        self._data_dir: str | None = None
        self._pg_ctl: str | None = None

    def find_or_start(self) -> str:
        candidates = [os.environ.get("CAMPAIGN_SYNC_TEST_PG_URL")]
        user = os.environ.get("USER") or "root"
        candidates += [
            f"postgresql://{user}@127.0.0.1:5432/postgres",
            "postgresql://root@127.0.0.1:5432/postgres",
            "postgresql://postgres@127.0.0.1:5432/postgres",
        ]
        for url in candidates:
            if url and _reachable(url):
                self.admin_url = url
                return url
        self.admin_url = self._start_private()
        return self.admin_url

    def _start_private(self) -> str:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError(HOW_TO_GET_ONE)
        data_dir = tempfile.mkdtemp(prefix="campaign-sync-pg-")
        if os.geteuid() == 0:
            raise RuntimeError(HOW_TO_GET_ONE + " (initdb refuses to run as root)")
        port = free_port()
        subprocess.run(
            [initdb, "-D", data_dir, "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [pg_ctl, "-D", data_dir, "-o", f"-p {port} -k {data_dir} -h 127.0.0.1", "-w", "start"],
            check=True,
            capture_output=True,
        )
        self._data_dir, self._pg_ctl = data_dir, pg_ctl
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def create_database(self) -> str:
        assert self.admin_url
        name = f"campaign_sync_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        base = self.admin_url.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def drop_database(self, url: str) -> None:
        assert self.admin_url
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')

    def stop(self) -> None:
        if self._pg_ctl and self._data_dir:
            subprocess.run(
                [self._pg_ctl, "-D", self._data_dir, "-m", "fast", "stop"], capture_output=True
            )
            shutil.rmtree(self._data_dir, ignore_errors=True)


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL of ours (`postgresql+psycopg://...`) as psycopg and libpq take it
    (`postgresql://...`, password kept): for a session of its own beside the code under
    test (an analyst holding a lock, an admin cutting connections)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def set_database_time_zone(url: str, zone: str) -> None:
    """`ALTER DATABASE ... SET timezone`: the zone new sessions of the database start in
    (a server, database or role not in UTC)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from campaign_sync.db.session import make_engine

    database = make_url(url).database
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.execute(text(f"alter database \"{database}\" set timezone to '{zone}'"))
        conn.commit()
    engine.dispose()
