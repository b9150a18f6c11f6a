"""The seen mark of a sweep: which sweep last showed each campaign (`campaign_sightings`),
and `campaigns.last_seen_at` kept to within a day.

An unchanged pass sees every campaign again. Marking that on `campaigns` would rewrite
every row (wide, several indexes) each pass; the mark lives in a narrow table instead,
written with one upsert per page, and `campaigns.last_seen_at` moves only when it is more
than `LAST_SEEN_SLACK` behind (like Linux's `relatime` for a file's access time) or when
the row is written anyway. `state.tombstone_unseen` reads the marks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Integer,
    Select,
    bindparam,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from campaign_sync.db.models import campaign_sightings, campaigns
from campaign_sync.db.tokens import by_tokens
from campaign_sync.db.types import UTCDateTime
from campaign_sync.domain import CampaignType

# How far campaigns.last_seen_at may lag behind the exact campaign_sightings.last_seen_at:
# a day, so that passes every few minutes leave `campaigns` alone (docs/reliability.md).
LAST_SEEN_SLACK = timedelta(days=1)


def mark_seen(
    conn: Connection,
    app: str,
    campaign_type: CampaignType,
    tokens: Sequence[str],
    *,
    sweep_id: int,
    now: datetime,
    written: Mapping[str, int] | None = None,
) -> None:
    """Record that sweep `sweep_id` showed these stored campaigns at `now` (UTC, aware):
    one upsert into `campaign_sightings`, and `campaigns.last_seen_at` set to `now` where
    it is more than `LAST_SEEN_SLACK` older. `written`: token -> id of the rows this
    transaction wrote with `last_seen_at` already: marked by key, without looking their
    tokens up or checking them again. Tokens not stored are ignored."""
    written = written or {}
    unwritten = [token for token in tokens if token not in written]
    if written:
        _upsert(
            conn, _ids_select(conn, [written[t] for t in tokens if t in written], sweep_id, now)
        )
    if not unwritten:
        return
    c = campaigns.c
    marks = (
        c.id,
        literal(sweep_id, Integer()).label("last_sweep_id"),
        literal(now, UTCDateTime()).label("last_seen_at"),
    )
    _upsert(conn, by_tokens(conn, app, campaign_type, unwritten, marks))
    behind = by_tokens(
        conn, app, campaign_type, unwritten, (c.id,), c.last_seen_at < now - LAST_SEEN_SLACK
    )
    stale = [campaign_id for (campaign_id,) in conn.execute(behind)]
    if stale:
        conn.execute(update(campaigns).where(c.id.in_(stale)).values(last_seen_at=now))


def _ids_select(conn: Connection, ids: list[int], sweep_id: int, now: datetime) -> Select[Any]:
    """(campaign_id, last_sweep_id, last_seen_at) rows for these keys: one array parameter
    on PostgreSQL (a statement of the same text for every page), an IN list on SQLite."""
    sweep = literal(sweep_id, Integer()).label("last_sweep_id")
    seen = literal(now, UTCDateTime()).label("last_seen_at")
    if conn.dialect.name == "postgresql":
        key = func.unnest(bindparam("seen_ids", ids, type_=ARRAY(BigInteger)))
        return select(key.label("campaign_id"), sweep, seen)
    return select(campaigns.c.id, sweep, seen).where(campaigns.c.id.in_(ids))


def _upsert(conn: Connection, rows: Select[Any]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    upsert = dialect.insert(campaign_sightings).from_select(
        ["campaign_id", "last_sweep_id", "last_seen_at"], rows
    )
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[campaign_sightings.c.campaign_id],
            set_={
                "last_sweep_id": upsert.excluded.last_sweep_id,
                "last_seen_at": upsert.excluded.last_seen_at,
            },
        )
    )
