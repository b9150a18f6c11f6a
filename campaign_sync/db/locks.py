"""One pass per app and type at a time, across processes, replicas and connection poolers.

The lock is a lease in the app's `sync_state` row: `lock_holder` (host:pid:nonce) and
`lock_expires_at`. Taking it, renewing it and giving it back are each one short
transaction, so it works the same on SQLite, on PostgreSQL, and through PgBouncer in any
pooling mode (session advisory locks do not: in transaction pooling they stay held by
whichever server connection ran them).

- A holder renews its lease every `lease / 3` seconds, and in every page transaction (the
  `Guard`), which also checks that it still holds it: a pass that lost its lease stops at
  its next page with `LockLost` instead of racing the new holder.
- A holder that dies without giving the lease back (kill -9, a cut network) blocks others
  for at most the lease (`CAMPAIGN_SYNC_LOCK_LEASE_SECONDS`, 60 by default); on the same
  host a holder whose process is gone is replaced at once.
- The lease's clock is the holders' own (UTC): replicas' clocks must agree to well within
  the lease (NTP does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, or_, select, text, update
from sqlalchemy.exc import DBAPIError

from campaign_sync.db.models import sync_state
from campaign_sync.db.revisions import HEAD_REVISION, SchemaNotCurrent, revision_problem
from campaign_sync.db.session import database_problem, wait_briefly_for_locks
from campaign_sync.db.types import upsert_insert, utcnow
from campaign_sync.domain import CampaignType

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 60.0

_HELD_HERE: set[str] = set()  # nonces of the leases this process holds now

Guard = Callable[[Connection], None]
"""Runs first in each page transaction; raises `LockLost` when the lease is gone."""


class LockLost(Exception):
    """The pass's lease was taken over or cleared while the pass ran."""


class SchemaChanged(LockLost, SchemaNotCurrent):
    """The database's schema is no longer this version's (migrated up or down while the
    lease was held): bad configuration, as at a start (exit 2), and the lease is void."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: this host (its name and PID namespace: `name/namespace`), this
    process, and a nonce for this pass. Processes are told apart only within one host
    and namespace: a host name shared by containers with their own PIDs is not enough."""

    host: str
    pid: int
    nonce: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.nonce}"

    @classmethod
    def mine(cls) -> Holder:
        return cls(_this_host(), os.getpid(), uuid.uuid4().hex[:12])

    @classmethod
    def parse(cls, text: str | None) -> Holder | None:
        parts = (text or "").rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])

    def gone(self) -> bool:
        """True when this holder's process surely no longer runs (only knowable here)."""
        if self.host != _this_host():
            return False
        if self.pid == os.getpid():  # ours, or a process before a restart in a container
            return self.nonce not in _HELD_HERE
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _this_host() -> str:
    """The host name, and the PID namespace whose process ids `gone` may trust."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:")
    except OSError:  # not Linux: process ids are the host's
        namespace = "-"
    return f"{socket.gethostname()}/{namespace}"


# The database still holds this version's schema (`Lease.renew`).
_AT_HEAD = text(
    "exists (select 1 from alembic_version where version_num = :head_revision)"
).bindparams(head_revision=HEAD_REVISION)


@dataclass
class Lease:
    """A lease this process holds on one app and type."""

    engine: Engine
    app: str
    campaign_type: CampaignType
    holder: Holder
    seconds: float

    def _mine(self) -> object:
        s = sync_state.c
        return and_(
            s.app == self.app,
            s.campaign_type == self.campaign_type.value,
            s.lock_holder == str(self.holder),
        )

    def renew(self, conn: Connection) -> None:
        """Extend the lease inside `conn`'s transaction (each page's, and every third of
        the lease); raises `LockLost` if it is gone, or if the database's schema is no
        longer this version's: a newer campaign-sync migrated it while the pass ran (a
        pass in flight wrote thousands of rows into it: a review's find). The revision is
        read in the same statement, so a page costs no round trip more."""
        renewed = conn.execute(
            update(sync_state)
            .where(self._mine(), _AT_HEAD)  # type: ignore[arg-type]
            .values(lock_expires_at=utcnow() + timedelta(seconds=self.seconds))
        )
        if renewed.rowcount != 1:
            stored = conn.execute(text("select max(version_num) from alembic_version")).scalar()
            problem = (
                "the database's alembic_version records no revision any more"
                if stored is None
                else revision_problem(str(stored))
            )
            if problem is not None:
                raise SchemaChanged(f"{problem}; stopping before writing anything more")
            raise LockLost(
                f"the pass lock of app '{self.app}' ({self.campaign_type.label}) was taken "
                "over (its lease ran out); stopping this pass before it writes anything more"
            )

    def release(self) -> None:
        """Give the lease back (it expires by itself if the database cannot take that,
        within `session.BRIEF_LOCK_TIMEOUT_SECONDS` when another session holds the row:
        it waited a whole lock timeout more before)."""
        _HELD_HERE.discard(self.holder.nonce)
        try:
            with self.engine.begin() as conn:
                wait_briefly_for_locks(conn)
                conn.execute(
                    update(sync_state)
                    .where(self._mine())  # type: ignore[arg-type]
                    .values(lock_holder=None, lock_expires_at=None)
                )
        except DBAPIError as error:
            log.warning(
                "could not give the pass lock back (it expires by itself): %s",
                database_problem(error),
            )

    async def keep_alive(self) -> None:
        """Renew every third of the lease until cancelled or lost (the next page's guard
        then stops the pass)."""
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                await asyncio.to_thread(self._renew_alone)
            except LockLost as lost:
                log.error("%s", lost)
                return
            except DBAPIError as error:  # the page transactions will say more
                log.warning("could not renew the pass lock: %s", database_problem(error))

    def _renew_alone(self) -> None:
        with self.engine.begin() as conn:
            self.renew(conn)


def try_lease(
    engine: Engine,
    app: str,
    campaign_type: CampaignType,
    seconds: float,
    *,
    for_a_pass: bool = True,
) -> Lease | str:
    """Take the lease on (app, type): the `Lease`, or a description of who holds it. A pass
    refused so is a skipped pass (`last_skipped_at`, shown by `status`); anything else
    (`for_a_pass=False`: `state reset`) is no pass, and not recorded as one."""
    s = sync_state.c
    pair = and_(s.app == app, s.campaign_type == campaign_type.value)
    holder = Holder.mine()
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(select(s.lock_holder, s.lock_expires_at).where(pair)).first()
        if row is None:  # the pair's first pass; another process may be creating it too
            new_row = {"app": app, "campaign_type": campaign_type.value, "updated_at": now}
            conn.execute(
                upsert_insert(engine.dialect.name, sync_state)
                .values(sweep_id=0, **new_row)
                .on_conflict_do_nothing()
            )
            current, expires = None, None
        else:
            current, expires = row
        free = or_(s.lock_holder.is_(None), s.lock_expires_at < now)
        previous = Holder.parse(current)
        if previous is not None and previous.gone():
            free = or_(free, s.lock_holder == current)
        taken = conn.execute(
            update(sync_state)
            .where(pair, free)
            .values(lock_holder=str(holder), lock_expires_at=now + timedelta(seconds=seconds))
        )
        if taken.rowcount == 1:
            _HELD_HERE.add(holder.nonce)
            return Lease(engine, app, campaign_type, holder, seconds)
        if for_a_pass:
            conn.execute(update(sync_state).where(pair).values(last_skipped_at=now))
    return f"held by {current} until {_when(expires)}"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "?"


@contextlib.asynccontextmanager
async def pass_lock(
    engine: Engine,
    app: str,
    campaign_type: CampaignType,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> AsyncIterator[Lease | str]:
    """Hold the lease for a pass: yields the `Lease` (renewed in the background until the
    block ends, then given back), or a string saying who holds it (the pass is skipped)."""
    lease = await asyncio.to_thread(try_lease, engine, app, campaign_type, lease_seconds)
    if isinstance(lease, str):
        yield lease
        return
    keeper = asyncio.create_task(lease.keep_alive())
    try:
        yield lease
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await asyncio.to_thread(lease.release)
