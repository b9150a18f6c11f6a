"""What `campaign-sync status` reports: per app and type, the last pass, the cursor, staleness."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select

from campaign_sync.db.locks import Holder
from campaign_sync.db.models import (
    campaign_stats_daily,
    campaign_stats_fetches,
    campaigns,
    sync_runs,
    sync_state,
)
from campaign_sync.db.types import utcnow
from campaign_sync.outcome import RunCounts


@dataclass
class TypeStatus:
    app: str
    campaign_type: str
    last_run_id: int | None
    last_run_status: str | None
    last_run_started_at: datetime | None
    last_run_finished_at: datetime | None
    last_run_error: str | None
    last_run_counts: dict[str, int]
    last_success_at: datetime | None
    consecutive_failures: int
    campaigns_stored: int
    campaigns_deleted: int
    oldest_detail_fetched_at: datetime | None
    details_older_than_max_age: int
    sweep_in_progress: bool
    sweep_offset: int
    last_complete_sweep_at: datetime | None
    stale: list[str]
    next_pass_at: datetime | None = None
    next_pass: str = "-"
    lock_holder: str | None = None  # host:pid:nonce of the pass holding the lease
    lock_expires_at: datetime | None = None
    lock_held: bool = False  # a holder whose lease has not expired: a pass is running
    last_skipped_at: datetime | None = None  # a pass skipped: another process held the lock
    stats_last_fetch_at: datetime | None = None  # push only: the stats side
    stats_campaigns_covered: int = 0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data


COUNT_COLUMNS = RunCounts.names()  # the sync_runs counters status reports


def collect_status(
    engine: Engine,
    *,
    detail_max_age_seconds: float,
    interval_seconds: float,
    app_intervals: Mapping[str, float] | None = None,
) -> list[TypeStatus]:
    """Per app and type: the last pass, its counts, the cursor and what is stale. A last
    success older than three intervals is stale: the app's own (`app_intervals`, seconds
    by app name, as the config file gives them), else `interval_seconds`."""
    intervals = app_intervals or {}
    now = utcnow()
    r, s = sync_runs.c, sync_state.c
    with engine.connect() as conn:
        pairs = {
            (row.app, row.campaign_type)
            for row in conn.execute(select(r.app, r.campaign_type).distinct())
        } | {(row.app, row.campaign_type) for row in conn.execute(select(s.app, s.campaign_type))}
        return [
            _pair_status(
                conn,
                app,
                campaign_type,
                now,
                detail_max_age_seconds,
                intervals.get(app, interval_seconds),
            )
            for app, campaign_type in sorted(pairs)
        ]


def _pair_status(
    conn: Connection,
    app: str,
    campaign_type: str,
    now: datetime,
    detail_max_age_seconds: float,
    interval_seconds: float,
) -> TypeStatus:
    c, r, s = campaigns.c, sync_runs.c, sync_state.c
    key_runs = and_(r.app == app, r.campaign_type == campaign_type)
    runs = (
        conn.execute(select(sync_runs).where(key_runs).order_by(r.id.desc()).limit(50))
        .mappings()
        .all()
    )
    last = runs[0] if runs else None
    failures = next((i for i, run in enumerate(runs) if run["status"] != "failed"), len(runs))
    last_success = _aware(
        conn.execute(
            select(func.max(r.finished_at)).where(key_runs, r.status == "succeeded")
        ).scalar()
    )
    max_age_cutoff = now - timedelta(seconds=detail_max_age_seconds)
    alive = c.deleted_at.is_(None)
    stored, deleted, oldest, old_details = conn.execute(
        select(
            func.count(),
            func.count(c.deleted_at),
            func.min(c.detail_fetched_at).filter(alive),
            func.count()
            .filter(alive)
            .filter((c.detail_fetched_at.is_(None)) | (c.detail_fetched_at < max_age_cutoff)),
        ).where(c.app == app, c.campaign_type == campaign_type)
    ).one()
    found = (
        conn.execute(select(sync_state).where(s.app == app, s.campaign_type == campaign_type))
        .mappings()
        .first()
    )
    state: dict[str, Any] = dict(found) if found is not None else {}
    expires = _aware(state.get("lock_expires_at"))
    leased = state.get("lock_holder") is not None and expires is not None and expires > now
    # A holder on this host whose process is gone (kill -9) holds nothing: the next pass
    # takes the lease at once (`locks.try_lease`), where status said "running now" for the
    # rest of the lease (a review's find).
    holder = Holder.parse(state.get("lock_holder")) if leased else None
    gone = holder is not None and holder.gone()
    held = leased and not gone
    stale: list[str] = []
    if last is not None and last["status"] == "running" and not held:
        # Killed (kill -9, out of memory) or its machine gone: its lease ran out unrenewed.
        # (A process paused a whole lease long may still wake and finish: hence "or".)
        started = _aware(last["started_at"])
        ago = f", started {_age(now - started)} ago" if started is not None else ""
        if gone and holder is not None:
            stale.append(
                f"the last pass (run {last['id']}{ago}) stopped without finishing: its "
                f"process ({holder.pid}, on this host) is gone; the next pass records it failed"
            )
        else:
            stale.append(
                f"the last pass (run {last['id']}{ago}) stopped without finishing, or "
                "stalled: its lease ran out unrenewed; the next pass records it failed"
            )
    if last_success is None:
        stale.append("never synced successfully")
    elif now - last_success > timedelta(seconds=3 * interval_seconds):
        stale.append(f"last success {_age(now - last_success)} ago")
    if failures:
        stale.append(f"{failures} failed pass(es) in a row")
    if old_details:
        stale.append(f"{old_details} detail(s) older than the max age")
    status = TypeStatus(
        app=app,
        campaign_type=campaign_type,
        last_run_id=last["id"] if last else None,
        last_run_status=last["status"] if last else None,
        last_run_started_at=last["started_at"] if last else None,
        last_run_finished_at=last["finished_at"] if last else None,
        last_run_error=last["error"] if last else None,
        last_run_counts={k: last[k] for k in COUNT_COLUMNS} if last else {},
        last_success_at=last_success,
        consecutive_failures=failures,
        campaigns_stored=stored,
        campaigns_deleted=deleted,
        oldest_detail_fetched_at=_aware(oldest),
        details_older_than_max_age=old_details,
        sweep_in_progress=bool(state.get("sweep_in_progress")),
        sweep_offset=int(state.get("sweep_offset") or 0),
        last_complete_sweep_at=state.get("last_complete_sweep_at"),
        stale=stale,
        next_pass_at=state.get("next_pass_at"),
        next_pass=describe_next_pass(
            state.get("next_pass_at"), last["status"] if last else None, now, running=held
        ),
        lock_holder=state.get("lock_holder"),
        lock_expires_at=expires,
        lock_held=held,
        last_skipped_at=state.get("last_skipped_at"),
    )
    if campaign_type == "push":
        status.stats_last_fetch_at, status.stats_campaigns_covered = _stats_side(conn, app)
    return status


STARTING_GRACE_SECONDS = 60  # a due pass starts within this (scheduler jitter, misfire grace)


def describe_next_pass(
    next_pass_at: datetime | None,
    last_run_status: str | None,
    now: datetime,
    *,
    running: bool = True,
) -> str:
    """When `serve` runs the next pass; a time long past means no `serve` is running.
    `running`: whether a pass holds the lease now; a last run still `running` without one
    was stopped unfinished, and says nothing of the next pass."""
    if last_run_status == "running" and running:
        return "running now"
    if next_pass_at is None:
        return "-"
    if next_pass_at.tzinfo is None:
        next_pass_at = next_pass_at.replace(tzinfo=UTC)
    seconds = (next_pass_at - now).total_seconds()
    if seconds >= 0:
        return f"in {_age(timedelta(seconds=seconds))}"
    if -seconds < STARTING_GRACE_SECONDS:
        return "starting"
    return (
        f"none: serve is not running (a pass was planned {_age(timedelta(seconds=-seconds))} ago)"
    )


def _stats_side(conn: Connection, app: str) -> tuple[datetime | None, int]:
    """The app's push stats: when Batch last answered a stats request, and how many
    campaigns have stats stored."""
    c, f, d = campaigns.c, campaign_stats_fetches.c, campaign_stats_daily.c
    last_fetch = conn.execute(
        select(func.max(f.fetched_at)).join(campaigns, c.id == f.campaign_id).where(c.app == app)
    ).scalar()
    covered = conn.execute(
        select(func.count(func.distinct(d.campaign_id)))
        .join(campaigns, c.id == d.campaign_id)
        .where(c.app == app)
    ).scalar_one()
    return _aware(last_fetch), int(covered)


def _aware(value: datetime | None) -> datetime | None:
    """Aggregates (min, max) skip the column type: SQLite hands back naive UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def age(moment: datetime | None) -> str:
    return "-" if moment is None else _age(utcnow() - moment)
