"""The per-app, per-type cursor (`sync_state`) and the run journal (`sync_runs`)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    case,
    exists,
    func,
    insert,
    select,
    true,
    update,
)

from campaign_sync.db.history import append_versions
from campaign_sync.db.models import (
    campaign_sightings,
    campaign_versions,
    campaigns,
    sync_runs,
    sync_state,
)
from campaign_sync.db.session import wait_briefly_for_locks
from campaign_sync.db.types import utcnow
from campaign_sync.domain import CampaignType, SweepPosition
from campaign_sync.outcome import RunCounts
from campaign_sync.plan import ChangeKind, version_row
from campaign_sync.storable import storable

log = logging.getLogger(__name__)

MASS_DELETE_MIN = 10  # tombstoning more than this many ...
MASS_DELETE_SHARE = 0.5  # ... and more than this share of the stored campaigns is refused


class MassDeleteRefused(Exception):
    """A pass would tombstone suspiciously many campaigns, or all of them."""


def pair_label(app: str, campaign_type: CampaignType) -> str:
    """How messages name an app's campaigns of one type: "push campaigns of app 'ios'"."""
    return f"{campaign_type.label} campaigns of app '{app}'"


def is_mass_delete(marked: int, stored: int) -> bool:
    """Marking `marked` of `stored` campaigns deleted is more than `MASS_DELETE_MIN` and
    more than `MASS_DELETE_SHARE` of them."""
    return marked > MASS_DELETE_MIN and marked > stored * MASS_DELETE_SHARE


def refuse_mass_delete(
    marked: int, stored: int, label: str, *, why: str, allow_mass_delete: bool
) -> None:
    """Raises `MassDeleteRefused` when a pass would mark `marked` of the `stored` campaigns
    not deleted (`label`: `pair_label`) as deleted, more than `MASS_DELETE_MIN` and more
    than `MASS_DELETE_SHARE` of them, `why` saying on what evidence; unless
    `allow_mass_delete`. The one rule for every way a deletion is decided."""
    if not allow_mass_delete and is_mass_delete(marked, stored):
        raise MassDeleteRefused(
            f"refusing to mark {marked} of {stored} stored {label} as deleted: {why}. If that "
            "is right, run campaign-sync sync --allow-mass-delete"
        )


@dataclass(frozen=True)
class SweepStart:
    sweep_id: int
    position: SweepPosition | None  # None: a new sweep from the top
    full_refresh: bool
    resumed: bool


def fail_abandoned_runs(conn: Connection, app: str, campaign_type: CampaignType) -> int:
    """Runs left `running` by a process that died; call only while holding the pass lock."""
    r = sync_runs.c
    result = conn.execute(
        update(sync_runs)
        .where(r.app == app, r.campaign_type == campaign_type.value, r.status == "running")
        .values(
            status="failed",
            finished_at=utcnow(),
            error="abandoned: the process running this pass stopped before it finished",
        )
    )
    return result.rowcount or 0


def begin_run(
    conn: Connection,
    app: str,
    campaign_type: CampaignType,
    *,
    full_refresh: bool,
    failed_with: str | None = None,
    started_at: datetime | None = None,
) -> int:
    """Insert the pass's `sync_runs` row, `running`, started now (or at `started_at`); with
    `failed_with`, a pass that ended before its run began, `failed` with that error and
    finished now. Returns its id."""
    now = utcnow()
    ended = {} if failed_with is None else {"finished_at": now, "error": failed_with}
    run_id = conn.execute(
        insert(sync_runs).returning(sync_runs.c.id),
        {
            "app": app,
            "campaign_type": campaign_type.value,
            "started_at": started_at or now,
            "status": "running" if failed_with is None else "failed",
            "full_refresh": full_refresh,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **ended,
        },
    ).scalar_one()
    return int(run_id)


def record_unbegun_run(
    engine: Engine,
    app: str,
    campaign_type: CampaignType,
    *,
    full_refresh: bool,
    error: str,
    started_at: datetime,
) -> int:
    """Record as `failed` a pass the database stopped before its run began (a lock met
    while taking the lease or beginning the run), from `started_at` (when the pass began)
    to now: without a row, the alert on failed runs (README) missed it. Returns the run's
    id.

    Waits for another session's lock only briefly (`session.wait_briefly_for_locks`): the
    pass already waited a whole lock timeout. Raises `sqlalchemy.exc.DBAPIError` when the database
    refuses this too (the caller logs it)."""
    with engine.begin() as conn:
        wait_briefly_for_locks(conn)
        return begin_run(
            conn,
            app,
            campaign_type,
            full_refresh=full_refresh,
            failed_with=error,
            started_at=started_at,
        )


def finish_run(
    conn: Connection,
    run_id: int,
    *,
    status: str,
    counts: RunCounts,
    sweep_id: int | None,
    sweep_complete: bool,
    error: str | None = None,
) -> None:
    conn.execute(
        update(sync_runs)
        .where(sync_runs.c.id == run_id)
        .values(
            status=status,
            finished_at=utcnow(),
            sweep_id=sweep_id,
            sweep_complete=sweep_complete,
            error=error,
            **counts.as_dict(),
        )
    )


def start_or_resume_sweep(
    conn: Connection,
    app: str,
    campaign_type: CampaignType,
    *,
    run_id: int,
    full_refresh: bool,
) -> SweepStart:
    """Resume the sweep a stopped pass left, or begin a new one (always, for a full refresh)."""
    s = sync_state.c
    key = and_(s.app == app, s.campaign_type == campaign_type.value)
    row = conn.execute(select(sync_state).where(key)).mappings().first()
    now = utcnow()
    if row is None:
        conn.execute(
            insert(sync_state),
            {"app": app, "campaign_type": campaign_type.value, "sweep_id": 0, "updated_at": now},
        )
        row = conn.execute(select(sync_state).where(key)).mappings().one()
    if row["sweep_in_progress"] and not full_refresh:
        conn.execute(update(sync_state).where(key).values(last_run_id=run_id, updated_at=now))
        anchors = tuple(row["sweep_anchor_tokens"] or ())
        return SweepStart(
            sweep_id=row["sweep_id"],
            position=SweepPosition(row["sweep_offset"], anchors),
            full_refresh=bool(row["sweep_full_refresh"]),
            resumed=True,
        )
    sweep_id = int(row["sweep_id"]) + 1
    conn.execute(
        update(sync_state)
        .where(key)
        .values(
            sweep_id=sweep_id,
            sweep_in_progress=True,
            sweep_started_at=now,
            sweep_offset=0,
            sweep_anchor_tokens=[],
            sweep_full_refresh=full_refresh,
            sweep_unidentified_entries=0,
            last_run_id=run_id,
            updated_at=now,
        )
    )
    return SweepStart(sweep_id=sweep_id, position=None, full_refresh=full_refresh, resumed=False)


def key_refusal(
    conn: Connection, app: str, campaign_type: CampaignType, fingerprint: str
) -> tuple[str | None, bool]:
    """Why a pass with the live API key of `fingerprint` (`BatchClient.key_fingerprint`)
    may not sync this app and type: its campaigns were swept with another key. Batch's
    live API key names one app, so another key is another app's (or a typo's): its list
    was stored under this app and ours, answering it 404, were marked deleted whenever
    the mass-delete rule could not tell (a review's find, four ways). Returns (the refusal
    or None, whether a key is recorded): None when the key is the one recorded, or when
    none is (the first pass, or after `state reset`); the pass then records it once Batch
    has answered a list call with it (`record_key`)."""
    s = sync_state.c
    key = and_(s.app == app, s.campaign_type == campaign_type.value)
    recorded = conn.execute(select(s.api_key_fingerprint).where(key)).scalar()
    if recorded is None or recorded == fingerprint:
        return None, recorded is not None
    return key_refusal_text(app, [campaign_type], "nothing was synced"), True


def key_refusal_text(app: str, types: Sequence[CampaignType], consequence: str) -> str:
    """The words of a refusal by `key_refusal` for these types, with what it means where it
    is said (the pass: "nothing was synced"; `check`: which passes will be refused) and
    the fix."""
    labels = " and ".join(campaign_type.label for campaign_type in types)
    return (
        f"the live API key of app '{app}' is not the one its {labels} campaigns "
        f"were synced with (a key of another Batch app?): {consequence}. If the new key "
        f"is right, run campaign-sync state reset --app {app} first"
    )


def record_key(conn: Connection, app: str, campaign_type: CampaignType, fingerprint: str) -> None:
    """Record the key a pass swept with, once Batch accepted it (a page of its list was
    stored), when none is recorded: recorded before any call, a key Batch refused (401)
    became the app's, and the right one was refused after it (a review's find)."""
    s = sync_state.c
    conn.execute(
        update(sync_state)
        .where(
            s.app == app, s.campaign_type == campaign_type.value, s.api_key_fingerprint.is_(None)
        )
        .values(api_key_fingerprint=fingerprint)
    )


def forget_key(conn: Connection, app: str, campaign_type: CampaignType) -> None:
    """Forget the key fingerprint `key_refusal` compares with (`state reset`)."""
    s = sync_state.c
    conn.execute(
        update(sync_state)
        .where(s.app == app, s.campaign_type == campaign_type.value)
        .values(api_key_fingerprint=None)
    )


def end_sweep(
    conn: Connection, app: str, campaign_type: CampaignType, *, complete: bool, now: datetime
) -> None:
    """Close the sweep: complete (record when), or abandoned (next pass starts afresh)."""
    s = sync_state.c
    values: dict[str, Any] = {
        "sweep_in_progress": False,
        "sweep_offset": 0,
        "sweep_anchor_tokens": [],
        "sweep_full_refresh": False,
        "sweep_unidentified_entries": 0,
        "updated_at": now,
    }
    if complete:
        values["last_complete_sweep_at"] = now
    conn.execute(
        update(sync_state)
        .where(s.app == app, s.campaign_type == campaign_type.value)
        .values(**values)
    )


def save_cursor(
    conn: Connection,
    app: str,
    campaign_type: CampaignType,
    position: SweepPosition,
    now: datetime,
    *,
    unidentified_entries: int = 0,
) -> None:
    """Record where the sweep goes on (with the page that got it there), and add the
    page's list entries that are no campaign to the sweep's count of them."""
    s = sync_state.c
    conn.execute(
        update(sync_state)
        .where(s.app == app, s.campaign_type == campaign_type.value)
        .values(
            sweep_offset=position.offset,
            # Tokens as Batch sent them may hold what the database refuses (U+0000): made
            # storable, an odd one just no longer matches, and the overlap check steps back.
            sweep_anchor_tokens=storable(list(position.anchor_tokens))[0],
            sweep_unidentified_entries=s.sweep_unidentified_entries + unidentified_entries,
            updated_at=now,
        )
    )


def details_to_refresh(
    conn: Connection,
    app: str,
    campaign_type: CampaignType,
    *,
    now: datetime,
    max_age_seconds: float,
    budget: int | None,
) -> set[str] | None:
    """The tokens whose stored detail this pass may fetch again for being old: the
    `budget` oldest of those older than `max_age_seconds`, so that the daily refresh is
    spread over passes. None (no limit) when `budget` is None or the age is 0."""
    if budget is None or max_age_seconds <= 0:
        return None
    c = campaigns.c
    cutoff = now - timedelta(seconds=max_age_seconds)
    oldest = conn.execute(
        select(c.campaign_token)
        .where(
            c.app == app,
            c.campaign_type == campaign_type.value,
            c.deleted_at.is_(None),
            c.detail_fetched_at <= cutoff,
        )
        .order_by(c.detail_fetched_at, c.id)
        .limit(budget)
    )
    return {token for (token,) in oldest}


def _unseen(app: str, campaign_type: CampaignType, sweep_id: int) -> ColumnElement[bool]:
    """Stored campaigns of the pair, not deleted, that sweep `sweep_id` did not show."""
    c = campaigns.c
    sighting = campaign_sightings.c
    seen_by_sweep = and_(sighting.campaign_id == c.id, sighting.last_sweep_id == sweep_id)
    return and_(
        c.app == app,
        c.campaign_type == campaign_type.value,
        c.deleted_at.is_(None),
        ~exists().where(seen_by_sweep),
    )


@dataclass(frozen=True)
class DeletionCandidates:
    """After a complete sweep: `tokens`, the stored campaigns not deleted that the sweep
    did not show; `baseline`, the mass-delete rule's base: the campaigns not deleted that
    were so when the last complete sweep ended (first seen before it, not restored since;
    before this sweep began when there was none); `baseline_unseen`, how many of those
    the sweep did not show: the count the rule weighs."""

    tokens: list[str]
    baseline: int
    baseline_unseen: int


def deletion_candidates(
    conn: Connection, app: str, campaign_type: CampaignType, *, sweep_id: int
) -> DeletionCandidates:
    """The deletion candidates of sweep `sweep_id` and the mass-delete rule's figures
    (`DeletionCandidates`). What was stored since the last complete sweep stays out of
    the rule: another app's list (a wrong key) stored by a pass the rule refused diluted
    it (the next pass with that key found our 250 under half of 550 and marked them
    deleted), and so did such campaigns deleted by the right key, then restored by the
    wrong one; counted as candidates against a baseline without them, campaigns stored by
    a stopped sweep and deleted in Batch since were refused for ever ('40 of 30')."""
    state = conn.execute(
        select(sync_state.c.sweep_started_at, sync_state.c.last_complete_sweep_at).where(
            sync_state.c.app == app, sync_state.c.campaign_type == campaign_type.value
        )
    ).one()
    started, completed = state
    cutoff = min(completed, started) if completed and started else completed or started
    c, v = campaigns.c, campaign_versions.c
    if cutoff is None:
        in_baseline: ColumnElement[bool] = true()
    else:
        restored_since = exists().where(
            v.campaign_id == c.id,
            v.change_kind == ChangeKind.RESTORED.value,
            v.valid_from >= cutoff,
        )
        in_baseline = and_(c.first_seen_at < cutoff, ~restored_since)
    alive = and_(c.app == app, c.campaign_type == campaign_type.value, c.deleted_at.is_(None))
    baseline = conn.execute(select(func.count()).where(alive, in_baseline)).scalar_one()
    found = conn.execute(
        select(c.campaign_token, case((in_baseline, 1), else_=0)).where(
            _unseen(app, campaign_type, sweep_id)
        )
    ).all()
    return DeletionCandidates(
        [token for token, _ in found], int(baseline), sum(old for _, old in found)
    )


def tombstone_unseen(
    conn: Connection,
    app: str,
    campaign_type: CampaignType,
    *,
    sweep_id: int,
    now: datetime,
    run_id: int | None = None,
) -> int:
    """After a complete sweep whose deletions `SyncPass._decide_deletions` decided (the
    mass-delete rule applied, every campaign left unseen confirmed gone by Batch's 404,
    the others marked seen): mark the stored campaigns the sweep did not see (no
    `campaign_sightings` row of `sweep_id`) deleted, each with a `deleted` version.
    Returns how many."""
    c = campaigns.c
    unseen = _unseen(app, campaign_type, sweep_id)
    missing = conn.execute(select(func.count()).where(unseen)).scalar_one()
    if missing:
        newest = (
            select(func.max(campaign_versions.c.version))
            .where(campaign_versions.c.campaign_id == c.id)
            .scalar_subquery()
        )
        history = [
            {**version_row(version, ChangeKind.DELETED, now, run_id, None),
             "campaign_id": campaign_id}
            for campaign_id, version in conn.execute(select(c.id, newest).where(unseen))
        ]  # fmt: skip
        conn.execute(update(campaigns).where(unseen).values(deleted_at=now))
        append_versions(conn, history)
    return int(missing)
