"""The tables, as SQLAlchemy 2 typed models. Names are fixed by the outside contract."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from campaign_sync.db.descriptions import TABLES
from campaign_sync.db.types import JSONDocument, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SIGHTINGS_FILLFACTOR = 70  # percent of a page filled by inserts; the rest is for HOT updates

# SQLite only auto-increments INTEGER PRIMARY KEY, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("app", "campaign_type", "campaign_token"),
        CheckConstraint("campaign_type in ('push', 'in_app')", name="campaign_type"),
        Index(None, "campaign_type"),
        Index(None, "live"),
        Index(None, "created_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(Text)
    campaign_type: Mapped[str] = mapped_column(String(16))
    campaign_token: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    live: Mapped[bool | None] = mapped_column(Boolean)
    from_api: Mapped[bool | None] = mapped_column(Boolean)
    dev_only: Mapped[bool | None] = mapped_column(Boolean)
    created_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    push_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    local_push_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    local_start_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    local_end_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    deeplink: Mapped[str | None] = mapped_column(Text)
    custom_payload: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    capping: Mapped[int | None] = mapped_column(Integer)
    priority: Mapped[str | None] = mapped_column(Text)
    time_to_live: Mapped[int | None] = mapped_column(BigInteger)
    labels: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    recurrence_repeat_unit: Mapped[str | None] = mapped_column(Text)
    recurrence_repeat_frequency: Mapped[int | None] = mapped_column(Integer)
    recurrence_end_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    theme: Mapped[str | None] = mapped_column(Text)
    landing_image: Mapped[str | None] = mapped_column(Text)
    gcm_collapse_key: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    detail: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    list_entry: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    list_hash: Mapped[str | None] = mapped_column(String(64))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def _campaign_fk() -> ForeignKey:
    return ForeignKey("campaigns.id", ondelete="CASCADE")


class Message(Base):
    __tablename__ = "messages"

    campaign_id: Mapped[int] = mapped_column(BigId, _campaign_fk(), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    language: Mapped[str | None] = mapped_column(Text)
    header: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    image: Mapped[str | None] = mapped_column(Text)


class MessageAction(Base):
    __tablename__ = "message_actions"

    campaign_id: Mapped[int] = mapped_column(BigId, _campaign_fk(), primary_key=True)
    message_position: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(Text)
    args: Mapped[Any] = mapped_column(JSONDocument, nullable=True)


class Trigger(Base):
    __tablename__ = "triggers"

    campaign_id: Mapped[int] = mapped_column(BigId, _campaign_fk(), primary_key=True)
    trigger_when: Mapped[str | None] = mapped_column(Text)
    event: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(Text)
    capping: Mapped[int | None] = mapped_column(Integer)
    grace_period_every: Mapped[int | None] = mapped_column(Integer)
    grace_period_unit: Mapped[str | None] = mapped_column(Text)


class Targeting(Base):
    __tablename__ = "targeting"

    campaign_id: Mapped[int] = mapped_column(BigId, _campaign_fk(), primary_key=True)
    segments: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    query: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    lang: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    region: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    custom_audience: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    extra: Mapped[Any] = mapped_column(JSONDocument, nullable=True)


class CampaignSighting(Base):
    """The seen mark of each campaign, apart from `campaigns` so that moving it every pass
    rewrites only this narrow row: no index covers the columns it updates, and PostgreSQL
    leaves room in each page (fillfactor 70), so the update is HOT (heap-only: no index
    entry written; PostgreSQL docs, "Heap-Only Tuples")."""

    __tablename__ = "campaign_sightings"
    __table_args__ = ({"postgresql_with": {"fillfactor": SIGHTINGS_FILLFACTOR}},)

    campaign_id: Mapped[int] = mapped_column(BigId, _campaign_fk(), primary_key=True)
    last_sweep_id: Mapped[int] = mapped_column(Integer)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SyncState(Base):
    __tablename__ = "sync_state"

    app: Mapped[str] = mapped_column(Text, primary_key=True)
    campaign_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    sweep_id: Mapped[int] = mapped_column(Integer, default=0)
    sweep_in_progress: Mapped[bool] = mapped_column(Boolean, default=False)
    sweep_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sweep_offset: Mapped[int] = mapped_column(Integer, default=0)
    sweep_anchor_tokens: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    sweep_full_refresh: Mapped[bool] = mapped_column(Boolean, default=False)
    # List entries of this sweep that are no campaign: while any, nothing is tombstoned.
    sweep_unidentified_entries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_complete_sweep_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_id: Mapped[int | None] = mapped_column(BigInteger)
    next_pass_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set by `serve`
    # The pass lock, a lease (db/locks.py): who holds it, until when; when one was skipped.
    lock_holder: Mapped[str | None] = mapped_column(Text)
    lock_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_skipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (
        Index(None, "app", "campaign_type", "started_at"),
        CheckConstraint(
            "status in ('running', 'succeeded', 'failed', 'interrupted')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(Text)
    campaign_type: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    full_refresh: Mapped[bool] = mapped_column(Boolean, default=False)
    sweep_id: Mapped[int | None] = mapped_column(Integer)
    sweep_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    list_calls: Mapped[int] = mapped_column(Integer, default=0)
    detail_calls: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    campaigns_inserted: Mapped[int] = mapped_column(Integer, default=0)
    campaigns_updated: Mapped[int] = mapped_column(Integer, default=0)
    campaigns_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    campaigns_deleted: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[int] = mapped_column(Integer, default=0)
    stats_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stats_rows_written: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stats_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)


class SyncWarning(Base):
    __tablename__ = "sync_warnings"
    __table_args__ = (Index(None, "run_id"), Index(None, "campaign_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sync_runs.id", ondelete="CASCADE")
    )
    campaign_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("campaigns.id", ondelete="CASCADE")
    )
    app: Mapped[str | None] = mapped_column(Text)
    campaign_type: Mapped[str | None] = mapped_column(String(16))
    campaign_token: Mapped[str | None] = mapped_column(Text)
    field: Mapped[str] = mapped_column(Text)
    raw_value: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CampaignVersion(Base):
    """A campaign's validity history: a row each time its detail really changed, it was
    deleted or it came back; `valid_to` is NULL on the current row (plan.version_row)."""

    __tablename__ = "campaign_versions"
    __table_args__ = (
        Index(None, "campaign_id", "recorded_at"),
        UniqueConstraint("campaign_id", "version"),
        CheckConstraint(
            "change_kind in ('created', 'changed', 'deleted', 'restored')", name="change_kind"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(BigId, _campaign_fk())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    version: Mapped[int] = mapped_column(Integer)
    change_kind: Mapped[str] = mapped_column(String(16))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CampaignUpdate(Base):
    """The audit trail of write-backs through Batch's update endpoint."""

    __tablename__ = "campaign_updates"
    __table_args__ = (Index(None, "app", "campaign_token"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    app: Mapped[str] = mapped_column(Text)
    campaign_token: Mapped[str] = mapped_column(Text)
    changed_fields: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    payload: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    batch_status: Mapped[int | None] = mapped_column(Integer)
    batch_code: Mapped[int | None] = mapped_column(Integer)
    batch_type: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)


class CampaignStatsDaily(Base):
    """Batch's push statistics: one row per campaign, day and version (`all`, or the A/B
    test's `a` and `b`). Counters Batch does not give (or that cannot be typed) are NULL."""

    __tablename__ = "campaign_stats_daily"
    __table_args__ = (
        UniqueConstraint("campaign_id", "date", "version"),
        Index(None, "date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(BigId, _campaign_fk())
    date: Mapped[date] = mapped_column(Date)
    version: Mapped[str] = mapped_column(String(16))
    sent: Mapped[int | None] = mapped_column(BigInteger)
    sent_optins: Mapped[int | None] = mapped_column(BigInteger)
    direct_open: Mapped[int | None] = mapped_column(BigInteger)
    influenced_open: Mapped[int | None] = mapped_column(BigInteger)
    reengaged: Mapped[int | None] = mapped_column(BigInteger)
    errors: Mapped[int | None] = mapped_column(BigInteger)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CampaignStatsFetch(Base):
    """The last stats request of each push campaign: when, and what came of it (`ok`,
    `no_stats` for a 404, `failed`). `fetched_at` moves only on `ok` and `no_stats`."""

    __tablename__ = "campaign_stats_fetches"

    campaign_id: Mapped[int] = mapped_column(BigId, _campaign_fk(), primary_key=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    days: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)


class ApiPacing(Base):
    """The request rate each app's passes learned from Batch's 429s (see
    `batch.ratelimit`), so that the next pass paces from its first request."""

    __tablename__ = "api_pacing"

    app: Mapped[str] = mapped_column(Text, primary_key=True)
    requests_per_second: Mapped[float] = mapped_column(Float)
    limit_seen: Mapped[bool] = mapped_column(Boolean)
    learned_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Core handles on the tables, for set-based statements.
campaigns = cast(Table, Campaign.__table__)
messages = cast(Table, Message.__table__)
message_actions = cast(Table, MessageAction.__table__)
triggers = cast(Table, Trigger.__table__)
targeting = cast(Table, Targeting.__table__)
sync_state = cast(Table, SyncState.__table__)
sync_runs = cast(Table, SyncRun.__table__)
sync_warnings = cast(Table, SyncWarning.__table__)
campaign_updates = cast(Table, CampaignUpdate.__table__)
campaign_versions = cast(Table, CampaignVersion.__table__)
campaign_sightings = cast(Table, CampaignSighting.__table__)
campaign_stats_daily = cast(Table, CampaignStatsDaily.__table__)
campaign_stats_fetches = cast(Table, CampaignStatsFetch.__table__)
api_pacing = cast(Table, ApiPacing.__table__)


def _describe(metadata: MetaData) -> None:
    """Every table's and column's meaning, from `db.descriptions` (the one source)."""
    for name, (meaning, columns) in TABLES.items():
        table = metadata.tables[name]
        table.comment = meaning
        for column, column_meaning in columns.items():
            table.c[column].comment = column_meaning


_describe(Base.metadata)
