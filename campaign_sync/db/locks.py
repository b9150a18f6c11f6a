"""One pass per app and type at a time, across processes and replicas.

PostgreSQL: a session advisory try-lock held on its own autocommit connection for the
whole pass. SQLite: an in-process lock plus an exclusive `flock` on a file beside the
database, so a second process on the same machine skips as well.

The lock comes with a guard that each page transaction runs first: on PostgreSQL it
checks, inside that transaction, that the lock's connection still holds the lock (a
database restart or a cut connection releases it), so a pass that lost its lock stops
writing at its next page with `LockLost` instead of racing another process.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from campaign_sync.batch.endpoints import CampaignType

LOCK_NAMESPACE = 0x43534E43  # "CSNC": keeps our advisory locks apart from other users'

log = logging.getLogger(__name__)

Guard = Callable[[Connection], None]
"""Runs first in each page transaction; raises `LockLost` when the pass lock is gone."""


class LockLost(Exception):
    """The pass lock was released under a running pass (its connection was lost)."""


def _no_guard(conn: Connection) -> None:
    """SQLite: the lock is a file lock of this very process; it cannot be lost."""


_local_locks: dict[tuple[str, str, str], threading.Lock] = {}
_local_guard = threading.Lock()


def lock_key(app: str, campaign_type: CampaignType) -> int:
    """A stable signed 32-bit key for the pair (crc32 is the same in every process)."""
    value = zlib.crc32(f"{app}\x00{campaign_type.value}".encode())
    return value - 2**32 if value >= 2**31 else value


@contextlib.contextmanager
def pass_lock(engine: Engine, app: str, campaign_type: CampaignType) -> Iterator[Guard | None]:
    """Yields the lock's `Guard` when this process holds the pass lock, None when another
    process does."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, lock_key(app, campaign_type)) as guard:
            yield guard
    else:
        with _local_lock(engine, app, campaign_type) as held:
            yield _no_guard if held else None


_lock_engines: dict[str, Engine] = {}


def _lock_engine(engine: Engine) -> Engine:
    """Lock connections live for a whole pass: keep them out of the loads' pool."""
    key = engine.url.render_as_string(hide_password=False)
    with _local_guard:
        if key not in _lock_engines:
            _lock_engines[key] = create_engine(
                engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
            )
        return _lock_engines[key]


@contextlib.contextmanager
def _advisory_lock(engine: Engine, key: int) -> Iterator[Guard | None]:
    lock_args = {"ns": LOCK_NAMESPACE, "key": key}
    with _lock_engine(engine).connect() as conn:
        held = bool(
            conn.execute(text("select pg_try_advisory_lock(:ns, :key)"), lock_args).scalar_one()
        )
        if not held:
            yield None
            return
        holder = int(conn.execute(text("select pg_backend_pid()")).scalar_one())

        def guard(page: Connection) -> None:
            # pg_locks shows a two-key advisory lock as (classid, objid, objsubid 2), as oids.
            still_held = page.execute(
                text(
                    "select exists(select 1 from pg_locks where locktype = 'advisory' "
                    "and classid = :ns and objid = :key and objsubid = 2 and pid = :pid "
                    "and granted)"
                ),
                {"ns": LOCK_NAMESPACE, "key": key & 0xFFFFFFFF, "pid": holder},
            ).scalar_one()
            if not still_held:
                raise LockLost(
                    "the pass lock was lost (its database connection closed); stopping this "
                    "pass before it writes anything more"
                )

        try:
            yield guard
        finally:
            try:
                conn.execute(text("select pg_advisory_unlock(:ns, :key)"), lock_args)
            except DBAPIError:
                log.warning("the pass lock's database connection was lost before its release")


@contextlib.contextmanager
def _local_lock(engine: Engine, app: str, campaign_type: CampaignType) -> Iterator[bool]:
    database = engine.url.database or ""
    name = (str(engine.url), app, campaign_type.value)
    with _local_guard:
        lock = _local_locks.setdefault(name, threading.Lock())
    if not lock.acquire(blocking=False):
        yield False
        return
    handle: IO[bytes] | None = None
    try:
        if database and database != ":memory:" and not database.startswith("file::memory"):
            path = Path(f"{database}.{app}.{campaign_type.value}.lock")
            handle = path.open("ab")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            os.utime(path)
        yield True
    finally:
        if handle is not None:
            handle.close()
        lock.release()
