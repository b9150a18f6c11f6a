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
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Insert,
    Integer,
    Select,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.sql.elements import Label

from campaign_sync.db.models import campaign_sightings, campaigns
from campaign_sync.db.tokens import by_tokens, token_parameters
from campaign_sync.db.types import UTCDateTime, upsert_insert
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
    statements = _statements(conn.dialect.name)
    marks = {"seen_sweep_id": sweep_id, "seen_at": now}
    unwritten = [token for token in tokens if token not in written]
    if written:
        ids = [written[token] for token in tokens if token in written]
        conn.execute(statements.by_ids, {"seen_ids": ids, **marks})
    if not unwritten:
        return
    by_token = token_parameters(app, campaign_type, unwritten)
    conn.execute(statements.by_tokens, by_token | marks)
    found = conn.execute(statements.behind, by_token | {"seen_before": now - LAST_SEEN_SLACK})
    stale = [campaign_id for (campaign_id,) in found]
    if stale:
        c = campaigns.c
        conn.execute(update(campaigns).where(c.id.in_(stale)).values(last_seen_at=now))


@dataclass(frozen=True)
class _Statements:
    by_ids: Insert  # the sightings of campaigns known by key
    by_tokens: Insert  # the sightings of campaigns known by token
    behind: Select[Any]  # which of those campaigns' last_seen_at is too old


@cache
def _statements(dialect_name: str) -> _Statements:
    """`mark_seen`'s statements, built once per dialect (see `db.tokens`)."""
    c = campaigns.c

    def marks() -> tuple[Label[Any], Label[Any]]:
        return (
            bindparam("seen_sweep_id", type_=Integer()).label("last_sweep_id"),
            bindparam("seen_at", type_=UTCDateTime()).label("last_seen_at"),
        )

    if dialect_name == "postgresql":
        key = func.unnest(bindparam("seen_ids", type_=ARRAY(BigInteger)))
        by_ids = select(key.label("campaign_id"), *marks())
    else:
        by_ids = select(c.id, *marks()).where(c.id.in_(bindparam("seen_ids", expanding=True)))
    behind = c.last_seen_at < bindparam("seen_before", type_=UTCDateTime())
    return _Statements(
        by_ids=_upsert(dialect_name, by_ids),
        by_tokens=_upsert(dialect_name, by_tokens(dialect_name, (c.id, *marks()))),
        behind=by_tokens(dialect_name, (c.id,), behind),
    )


def _upsert(dialect_name: str, rows: Select[Any]) -> Insert:
    upsert = upsert_insert(dialect_name, campaign_sightings).from_select(
        ["campaign_id", "last_sweep_id", "last_seen_at"], rows
    )
    return upsert.on_conflict_do_update(
        index_elements=[campaign_sightings.c.campaign_id],
        set_={
            "last_sweep_id": upsert.excluded.last_sweep_id,
            "last_seen_at": upsert.excluded.last_seen_at,
        },
    )
