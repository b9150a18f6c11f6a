"""Push statistics in the database: the campaigns the selection rule reads, and applying
a batch of stats answers (upsert of `campaign_stats_daily`, the fetch record of each
campaign, warnings) in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, exists, select

from campaign_sync.db.loader import warning_row
from campaign_sync.db.models import (
    campaign_stats_daily,
    campaign_stats_fetches,
    campaigns,
    triggers,
)
from campaign_sync.db.types import upsert_insert
from campaign_sync.db.warnings import record_warnings
from campaign_sync.domain import CampaignType
from campaign_sync.push_stats import COUNTERS, CampaignStats, StatsCandidate


@dataclass
class StatsFetch:
    """One campaign's stats request: `ok` (with `stats`), `no_stats` (404) or `failed`."""

    candidate: StatsCandidate
    outcome: str
    stats: CampaignStats | None = None
    error: str | None = None


def stats_candidates(conn: Connection, app: str) -> list[StatsCandidate]:
    """Every stored, not deleted push campaign of the app, as the selection rule reads it."""
    c, f = campaigns.c, campaign_stats_fetches.c
    automation = exists().where(triggers.c.campaign_id == c.id).label("automation")
    rows = conn.execute(
        select(
            c.id,
            c.campaign_token,
            c.live,
            c.push_time,
            c.local_push_time,
            c.created_date,
            c.end_date,
            c.recurrence_end_date,
            c.recurrence_repeat_unit,
            automation,
            f.fetched_at,
        )
        .select_from(campaigns.outerjoin(campaign_stats_fetches, f.campaign_id == c.id))
        .where(
            c.app == app,
            c.campaign_type == CampaignType.PUSH.value,
            c.deleted_at.is_(None),
        )
        .order_by(c.id)
    )
    return [
        StatsCandidate(
            campaign_id=row.id,
            campaign_token=row.campaign_token,
            live=row.live,
            send_time=row.push_time or _as_utc(row.local_push_time) or row.created_date,
            end_date=row.end_date or row.recurrence_end_date,
            repeats=row.recurrence_repeat_unit is not None or bool(row.automation),
            fetched_at=row.fetched_at,
        )
        for row in rows
    ]


def _as_utc(moment: datetime | None) -> datetime | None:
    """A device wall-clock time, read as UTC: off by the time zone, close enough to decide."""
    return None if moment is None else moment.replace(tzinfo=UTC)


def write_stats(
    conn: Connection, app: str, run_id: int, fetches: Sequence[StatsFetch], now: datetime
) -> tuple[int, int]:
    """Apply a batch of fetches in the caller's transaction; returns (rows written,
    warnings). A day already stored is updated in place (its numbers grow)."""
    rows: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for fetch in fetches:
        candidate = fetch.candidate
        stats = fetch.stats
        answered = fetch.outcome in ("ok", "no_stats")
        records.append(
            {
                "campaign_id": candidate.campaign_id,
                "attempted_at": now,
                "fetched_at": now if answered else None,
                "outcome": fetch.outcome,
                "days": stats.days if stats is not None else None,
                "run_id": run_id,
                "error": fetch.error,
            }
        )
        if stats is None:
            continue
        rows.extend(
            {**row, "campaign_id": candidate.campaign_id, "fetched_at": now} for row in stats.rows
        )
        warnings.extend(
            warning_row(
                warning,
                run_id=run_id,
                app=app,
                campaign_type=CampaignType.PUSH,
                campaign_token=candidate.campaign_token,
                campaign_id=candidate.campaign_id,
                now=now,
            )
            for warning in stats.warnings
        )
    if rows:
        _upsert(
            conn,
            campaign_stats_daily,
            rows,
            keys=("campaign_id", "date", "version"),
            updates=(*COUNTERS, "fetched_at"),
        )
    if records:
        # A failed request keeps the last good `fetched_at`: the campaign stays due.
        attempt = ("attempted_at", "outcome", "run_id", "error")
        for answered in (True, False):
            batch = [r for r in records if (r["fetched_at"] is not None) is answered]
            if batch:
                updates = (*attempt, "fetched_at", "days") if answered else attempt
                _upsert(conn, campaign_stats_fetches, batch, keys=("campaign_id",), updates=updates)
    if warnings:
        record_warnings(conn, warnings)
    return len(rows), len(warnings)


def _upsert(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    keys: Sequence[str],
    updates: Sequence[str],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, in PostgreSQL's or SQLite's spelling."""
    statement = upsert_insert(conn.dialect.name, table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: statement.excluded[name] for name in updates},
    )
    conn.execute(statement, rows)
