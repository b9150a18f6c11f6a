"""One pass per app and type at a time, across processes and replicas.

PostgreSQL: a session advisory try-lock held on its own autocommit connection for the
whole pass. SQLite: an in-process lock plus an exclusive `flock` on a file beside the
database, so a second process on the same machine skips as well.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from campaign_sync.batch.endpoints import CampaignType

LOCK_NAMESPACE = 0x43534E43  # "CSNC": keeps our advisory locks apart from other users'

_local_locks: dict[tuple[str, str, str], threading.Lock] = {}
_local_guard = threading.Lock()


def lock_key(app: str, campaign_type: CampaignType) -> int:
    """A stable signed 32-bit key for the pair (crc32 is the same in every process)."""
    value = zlib.crc32(f"{app}\x00{campaign_type.value}".encode())
    return value - 2**32 if value >= 2**31 else value


@contextlib.contextmanager
def pass_lock(engine: Engine, app: str, campaign_type: CampaignType) -> Iterator[bool]:
    """Yields True when this process holds the pass lock, False when someone else does."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, lock_key(app, campaign_type)) as held:
            yield held
    else:
        with _local_lock(engine, app, campaign_type) as held:
            yield held


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
def _advisory_lock(engine: Engine, key: int) -> Iterator[bool]:
    with _lock_engine(engine).connect() as conn:
        held = bool(
            conn.execute(
                text("select pg_try_advisory_lock(:ns, :key)"), {"ns": LOCK_NAMESPACE, "key": key}
            ).scalar_one()
        )
        try:
            yield held
        finally:
            if held:
                conn.execute(
                    text("select pg_advisory_unlock(:ns, :key)"),
                    {"ns": LOCK_NAMESPACE, "key": key},
                )


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
