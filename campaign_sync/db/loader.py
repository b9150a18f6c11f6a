"""Writing one swept page to the database in one transaction: campaign rows and their
children, warnings, the seen-marking and the sweep cursor, set-based (a few statements
per page, not a round trip per row)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.batch.sweep import SweepPosition
from campaign_sync.db.models import (
    campaign_versions,
    campaigns,
    message_actions,
    messages,
    sync_state,
    sync_warnings,
    targeting,
    triggers,
)
from campaign_sync.transform import (
    CampaignRows,
    FieldWarning,
    stable_hash,
    transform_campaign,
)

CHILD_TABLES = (messages, message_actions, triggers, targeting)


@dataclass(frozen=True)
class StoredCampaign:
    id: int
    list_hash: str | None
    content_hash: str | None
    detail_fetched_at: datetime | None
    deleted_at: datetime | None


@dataclass
class PageLoad:
    """What one page brought: its entries, the details fetched, and what went wrong."""

    app: str
    campaign_type: CampaignType
    run_id: int | None  # None outside a sync pass (a write-back)
    sweep_id: int
    now: datetime
    list_entries: dict[str, dict[str, Any]]  # token -> list entry, every fresh entry
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # token -> why its detail failed
    position: SweepPosition | None = None  # the cursor to save with this page
    stored: dict[str, StoredCampaign] = field(default_factory=dict)  # what the DB held
    _list_hashes: dict[str, str] = field(default_factory=dict, repr=False)

    def list_hash(self, token: str) -> str | None:
        """The stable hash of a token's list entry, computed once per page."""
        entry = self.list_entries.get(token)
        if entry is None:
            return None
        if token not in self._list_hashes:
            self._list_hashes[token] = stable_hash(entry)
        return self._list_hashes[token]


@dataclass
class PageCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    warnings: int = 0

    def add(self, other: PageCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.warnings += other.warnings


def stored_campaigns(
    conn: Connection, app: str, campaign_type: CampaignType, tokens: Iterable[str]
) -> dict[str, StoredCampaign]:
    c = campaigns.c
    rows = conn.execute(
        select(
            c.campaign_token,
            c.id,
            c.list_hash,
            c.content_hash,
            c.detail_fetched_at,
            c.deleted_at,
        ).where(
            c.app == app,
            c.campaign_type == campaign_type.value,
            c.campaign_token.in_(list(tokens)),
        )
    )
    return {row[0]: StoredCampaign(*row[1:]) for row in rows}


def _child_rows(campaign_id: int, rows: CampaignRows) -> dict[Any, list[dict[str, Any]]]:
    children: dict[Any, list[dict[str, Any]]] = {
        messages: [{**m, "campaign_id": campaign_id} for m in rows.messages],
        message_actions: [{**a, "campaign_id": campaign_id} for a in rows.message_actions],
        triggers: [{**rows.trigger, "campaign_id": campaign_id}] if rows.trigger else [],
        targeting: [{**rows.targeting, "campaign_id": campaign_id}] if rows.targeting else [],
    }
    return children


def _insert_children(conn: Connection, pending: Mapping[Any, list[dict[str, Any]]]) -> None:
    for table, rows in pending.items():
        if rows:
            conn.execute(insert(table), rows)


def _warning_rows(
    load: PageLoad, token: str, campaign_id: int | None, warnings: list[FieldWarning]
) -> list[dict[str, Any]]:
    return [
        {
            "run_id": load.run_id,
            "campaign_id": campaign_id,
            "app": load.app,
            "campaign_type": load.campaign_type.value,
            "campaign_token": token,
            "field": w.field,
            "raw_value": w.raw_value,
            "message": w.message,
            "created_at": load.now,
        }
        for w in warnings
    ]


def load_page(conn: Connection, load: PageLoad) -> PageCounts:
    """Apply one page inside the caller's transaction; returns what changed."""
    stored = load.stored
    counts = PageCounts()
    now = load.now
    ctype = load.campaign_type.value
    new_rows: list[tuple[str, CampaignRows, dict[str, Any]]] = []
    changed: list[tuple[StoredCampaign, str, CampaignRows, dict[str, Any]]] = []
    refreshed: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []

    for token, detail in load.details.items():
        entry = load.list_entries.get(token)
        bookkeeping = {
            "list_entry": entry,
            "list_hash": load.list_hash(token),
            "content_hash": stable_hash(detail),
            "detail_fetched_at": now,
            "last_seen_at": now,
            "last_sweep_id": load.sweep_id,
            "deleted_at": None,
        }
        known = stored.get(token)
        if known is not None and known.content_hash == bookkeeping["content_hash"]:
            refreshed.append(
                {"b_id": known.id, "v_list_hash": bookkeeping["list_hash"], "v_list_entry": entry}
            )
            if known.deleted_at is not None:
                counts.updated += 1
            continue
        rows = transform_campaign(load.campaign_type, token, detail)
        if known is None:
            new_rows.append((token, rows, bookkeeping))
        else:
            changed.append((known, token, rows, bookkeeping))

    for token, why in load.failed.items():
        entry = load.list_entries.get(token)
        known = stored.get(token)
        if known is None and entry is not None:
            # Keep the campaign visible from its list entry; its detail is retried next pass.
            rows = transform_campaign(load.campaign_type, token, entry)
            rows.campaign["detail"] = None
            bookkeeping = {
                "list_entry": entry,
                "list_hash": None,
                "content_hash": None,
                "detail_fetched_at": None,
                "last_seen_at": now,
                "last_sweep_id": load.sweep_id,
                "deleted_at": None,
            }
            rows.warnings.insert(0, FieldWarning("detail", None, why))
            new_rows.append((token, rows, bookkeeping))
        else:
            warnings += _warning_rows(
                load, token, known.id if known else None, [FieldWarning("detail", None, why)]
            )

    pending_children: dict[Any, list[dict[str, Any]]] = {table: [] for table in CHILD_TABLES}
    versions: list[dict[str, Any]] = []

    def version(campaign_id: int, rows: CampaignRows, bookkeeping: dict[str, Any]) -> None:
        if bookkeeping["content_hash"] is not None:
            versions.append(
                {
                    "campaign_id": campaign_id,
                    "recorded_at": now,
                    "run_id": load.run_id,
                    "content_hash": bookkeeping["content_hash"],
                    "detail": rows.campaign["detail"],
                }
            )

    if new_rows:
        inserted = conn.execute(
            insert(campaigns).returning(
                campaigns.c.id, campaigns.c.campaign_token, sort_by_parameter_order=True
            ),
            [
                {
                    "app": load.app,
                    "campaign_type": ctype,
                    "campaign_token": token,
                    **rows.campaign,
                    **bookkeeping,
                    "first_seen_at": now,
                    "updated_at": now,
                }
                for token, rows, bookkeeping in new_rows
            ],
        ).all()
        for (campaign_id, _), (token, rows, bookkeeping) in zip(inserted, new_rows, strict=True):
            for table, child in _child_rows(campaign_id, rows).items():
                pending_children[table] += child
            warnings += _warning_rows(load, token, campaign_id, rows.warnings)
            version(campaign_id, rows, bookkeeping)
        counts.inserted += len(new_rows)

    if changed:
        ids = [known.id for known, *_ in changed]
        for table in CHILD_TABLES:
            conn.execute(delete(table).where(table.c.campaign_id.in_(ids)))
        columns = [*changed[0][2].campaign, *changed[0][3], "updated_at"]
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == bindparam("b_id"))
            .values({key: bindparam(f"v_{key}") for key in columns}),
            [
                {"b_id": known.id}
                | {f"v_{key}": value for key, value in rows.campaign.items()}
                | {f"v_{key}": value for key, value in bookkeeping.items()}
                | {"v_updated_at": now}
                for known, _, rows, bookkeeping in changed
            ],
        )
        for known, token, rows, bookkeeping in changed:
            for table, child in _child_rows(known.id, rows).items():
                pending_children[table] += child
            warnings += _warning_rows(load, token, known.id, rows.warnings)
            version(known.id, rows, bookkeeping)
        counts.updated += len(changed)

    _insert_children(conn, pending_children)
    if versions:
        conn.execute(insert(campaign_versions), versions)

    if refreshed:
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == bindparam("b_id"))
            .values(
                list_hash=bindparam("v_list_hash"),
                list_entry=bindparam("v_list_entry"),
                detail_fetched_at=now,
                deleted_at=None,
            ),
            refreshed,
        )

    gone_ids = [
        stored[token].id
        for token in load.gone
        if token in stored and stored[token].deleted_at is None
    ]
    if gone_ids:
        conn.execute(update(campaigns).where(campaigns.c.id.in_(gone_ids)).values(deleted_at=now))
        counts.deleted += len(gone_ids)

    seen = [token for token in load.list_entries if token not in load.gone]
    if seen:
        c = campaigns.c
        conn.execute(
            update(campaigns)
            .where(c.app == load.app, c.campaign_type == ctype, c.campaign_token.in_(seen))
            .values(last_seen_at=now, last_sweep_id=load.sweep_id)
        )

    if warnings:
        conn.execute(insert(sync_warnings), warnings)
    counts.warnings += len(warnings)

    if load.position is not None:
        save_position(conn, load.app, load.campaign_type, load.position, now)

    counts.unchanged += len(load.list_entries) - counts.inserted - counts.updated - counts.deleted
    return counts


def save_position(
    conn: Connection,
    app: str,
    campaign_type: CampaignType,
    position: SweepPosition,
    now: datetime,
) -> None:
    s = sync_state.c
    conn.execute(
        update(sync_state)
        .where(s.app == app, s.campaign_type == campaign_type.value)
        .values(
            sweep_offset=position.offset,
            sweep_anchor_tokens=list(position.anchor_tokens),
            updated_at=now,
        )
    )
