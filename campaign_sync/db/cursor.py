"""What operators see and reset of the per-app, per-type cursor (`sync_state`).

A reset abandons the sweep in progress, so the next pass starts a fresh sweep from the top
(the equivalent of `meltano state clear`), and forgets which live API key the campaigns were
swept with (`state.key_refusal`): the next pass records its own. The sweep counter is kept:
stored campaigns remember the sweep that last saw them, so it must never go back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, select, true

from campaign_sync.db.locks import DEFAULT_LEASE_SECONDS, Lease, try_lease
from campaign_sync.db.models import sync_state
from campaign_sync.db.state import end_sweep, forget_key
from campaign_sync.db.types import utcnow
from campaign_sync.domain import CampaignType


class CursorBusy(Exception):
    """Another process is syncing this app and type: resetting now would race with it."""


@dataclass(frozen=True)
class Cursor:
    app: str
    campaign_type: CampaignType
    sweep_id: int
    sweep_in_progress: bool
    sweep_offset: int
    sweep_started_at: datetime | None
    last_complete_sweep_at: datetime | None
    next_pass_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "campaign_type": self.campaign_type.value,  # as stored, and as status --json has it
            "type": self.campaign_type.label,  # as the command line spells it
            "sweep_id": self.sweep_id,
            "sweep_in_progress": self.sweep_in_progress,
            "sweep_offset": self.sweep_offset,
            "sweep_started_at": _iso(self.sweep_started_at),
            "last_complete_sweep_at": _iso(self.last_complete_sweep_at),
            "next_pass_at": _iso(self.next_pass_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _matching(apps: Sequence[str], types: Sequence[CampaignType]) -> ColumnElement[bool]:
    s = sync_state.c
    conditions: list[ColumnElement[bool]] = [true()]
    if apps:
        conditions.append(s.app.in_(apps))
    if types:
        conditions.append(s.campaign_type.in_([t.value for t in types]))
    return and_(*conditions)


def read_cursors(
    engine: Engine, apps: Sequence[str] = (), types: Sequence[CampaignType] = ()
) -> list[Cursor]:
    s = sync_state.c
    query = select(sync_state).where(_matching(apps, types)).order_by(s.app, s.campaign_type)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        Cursor(
            app=row["app"],
            campaign_type=CampaignType(row["campaign_type"]),
            sweep_id=int(row["sweep_id"] or 0),
            sweep_in_progress=bool(row["sweep_in_progress"]),
            sweep_offset=int(row["sweep_offset"] or 0),
            sweep_started_at=row["sweep_started_at"],
            last_complete_sweep_at=row["last_complete_sweep_at"],
            next_pass_at=row["next_pass_at"],
        )
        for row in rows
    ]


def reset_cursors(engine: Engine, cursors: Sequence[Cursor]) -> None:
    """Abandon each cursor's sweep, all or none: every pass lock is taken first, and when a
    pass holds one, `CursorBusy` names it and nothing is reset (resetting the others first
    left them reset under a message naming only the busy one)."""
    leases: list[Lease] = []
    try:
        busy = []
        for cursor in cursors:
            lease = try_lease(
                engine, cursor.app, cursor.campaign_type, DEFAULT_LEASE_SECONDS, for_a_pass=False
            )
            if isinstance(lease, str):
                busy.append(f"{cursor.app}/{cursor.campaign_type.label} ({lease})")
            else:
                leases.append(lease)
        if busy:
            raise CursorBusy(
                f"{', '.join(busy)} {'is' if len(busy) == 1 else 'are'} being synced by another "
                "process; nothing was reset: reset once that pass is over"
            )
        with engine.begin() as conn:
            for lease, cursor in zip(leases, cursors, strict=True):
                lease.renew(conn)
                end_sweep(conn, cursor.app, cursor.campaign_type, complete=False, now=utcnow())
                forget_key(conn, cursor.app, cursor.campaign_type)
    finally:
        for lease in leases:
            lease.release()
