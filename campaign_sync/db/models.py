"""The tables, as SQLAlchemy Core `Table`s. Names are fixed by the outside contract.

Core, not the ORM's declarative classes: nothing here maps rows to objects (every
statement is set-based), and declaring the tables without `sqlalchemy.orm` keeps ~70 ms
of imports and class building off every `sync` start (benchmarks/cli_startup.py)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
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
    text,
)

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


metadata = MetaData(naming_convention=NAMING)


campaigns = Table(
    "campaigns",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("app", Text, nullable=False),
    Column("campaign_type", String(16), nullable=False),
    Column("campaign_token", Text, nullable=False),
    Column("name", Text),
    Column("live", Boolean),
    Column("from_api", Boolean),
    Column("dev_only", Boolean),
    Column("created_date", UTCDateTime),
    Column("push_time", UTCDateTime),
    Column("start_date", UTCDateTime),
    Column("end_date", UTCDateTime),
    Column("local_push_time", DateTime(timezone=False)),
    Column("local_start_date", DateTime(timezone=False)),
    Column("local_end_date", DateTime(timezone=False)),
    Column("deeplink", Text),
    Column("custom_payload", JSONDocument, nullable=True),
    Column("capping", Integer),
    Column("priority", Text),
    Column("time_to_live", BigInteger),
    Column("labels", JSONDocument, nullable=True),
    Column("recurrence_repeat_unit", Text),
    Column("recurrence_repeat_frequency", Integer),
    Column("recurrence_end_date", UTCDateTime),
    Column("theme", Text),
    Column("landing_image", Text),
    Column("gcm_collapse_key", JSONDocument, nullable=True),
    Column("detail", JSONDocument, nullable=True),
    Column("list_entry", JSONDocument, nullable=True),
    Column("list_hash", String(64)),
    Column("content_hash", String(64)),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("detail_fetched_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
    UniqueConstraint("app", "campaign_type", "campaign_token"),
    CheckConstraint("campaign_type in ('push', 'in_app')", name="campaign_type"),
    Index(None, "campaign_type"),
    Index(None, "live"),
    Index(None, "created_date"),
)


def _campaign_fk() -> ForeignKey:
    return ForeignKey("campaigns.id", ondelete="CASCADE")


messages = Table(
    "messages",
    metadata,
    Column("campaign_id", BigId, _campaign_fk(), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("language", Text),
    Column("header", Text),
    Column("title", Text),
    Column("body", Text),
    Column("image", Text),
)


message_actions = Table(
    "message_actions",
    metadata,
    Column("campaign_id", BigId, _campaign_fk(), primary_key=True),
    Column("message_position", Integer, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("action", Text),
    Column("label", Text),
    Column("args", JSONDocument, nullable=True),
)


triggers = Table(
    "triggers",
    metadata,
    Column("campaign_id", BigId, _campaign_fk(), primary_key=True),
    Column("trigger_when", Text),
    Column("event", Text),
    Column("label", Text),
    Column("capping", Integer),
    Column("grace_period_every", Integer),
    Column("grace_period_unit", Text),
)


targeting = Table(
    "targeting",
    metadata,
    Column("campaign_id", BigId, _campaign_fk(), primary_key=True),
    Column("segments", JSONDocument, nullable=True),
    Column("query", JSONDocument, nullable=True),
    Column("lang", JSONDocument, nullable=True),
    Column("region", JSONDocument, nullable=True),
    Column("custom_audience", JSONDocument, nullable=True),
    Column("extra", JSONDocument, nullable=True),
)


# campaign_sightings: The seen mark of each campaign, apart from `campaigns` so that moving it
# every pass rewrites only this narrow row: no index covers the columns it updates, and PostgreSQL
# leaves room in each page (fillfactor 70), so the update is HOT (heap-only: no index entry
# written; PostgreSQL docs, "Heap-Only Tuples").
campaign_sightings = Table(
    "campaign_sightings",
    metadata,
    Column("campaign_id", BigId, _campaign_fk(), primary_key=True),
    Column("last_sweep_id", Integer, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    postgresql_with={"fillfactor": SIGHTINGS_FILLFACTOR},
)


sync_state = Table(
    "sync_state",
    metadata,
    # In the order the migrations made the columns (a test holds it: docs/schema.md lists
    # them so, as `\d sync_state` and `select *` show them).
    Column("app", Text, primary_key=True),
    Column("campaign_type", String(16), primary_key=True),
    Column("sweep_id", Integer, default=0, nullable=False),
    Column("sweep_in_progress", Boolean, default=False, nullable=False),
    Column("sweep_started_at", UTCDateTime),
    Column("sweep_offset", Integer, default=0, nullable=False),
    Column("sweep_anchor_tokens", JSONDocument, nullable=True),
    Column("sweep_full_refresh", Boolean, default=False, nullable=False),
    Column("last_complete_sweep_at", UTCDateTime),
    Column("last_run_id", BigInteger),
    Column("updated_at", UTCDateTime),
    Column("next_pass_at", UTCDateTime),
    # List entries of this sweep that are no campaign: while any, nothing is tombstoned.
    Column("sweep_unidentified_entries", Integer, default=0, server_default="0", nullable=False),
    # The pass lock, a lease (db/locks.py): who holds it, until when; when one was skipped.
    Column("lock_holder", Text),
    Column("lock_expires_at", UTCDateTime),
    Column("last_skipped_at", UTCDateTime),
    # Which live API key the stored campaigns were swept with (`state.key_fingerprint`).
    Column("api_key_fingerprint", String(32)),
)


sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("app", Text, nullable=False),
    Column("campaign_type", String(16), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("full_refresh", Boolean, default=False, nullable=False),
    Column("sweep_id", Integer),
    Column("sweep_complete", Boolean, default=False, nullable=False),
    Column("list_calls", Integer, default=0, nullable=False),
    Column("detail_calls", Integer, default=0, nullable=False),
    Column("retries", Integer, default=0, nullable=False),
    Column("campaigns_inserted", Integer, default=0, nullable=False),
    Column("campaigns_updated", Integer, default=0, nullable=False),
    Column("campaigns_unchanged", Integer, default=0, nullable=False),
    Column("campaigns_deleted", Integer, default=0, nullable=False),
    Column("warnings", Integer, default=0, nullable=False),
    Column("error", Text),
    Column("host", Text),
    Column("pid", Integer),
    # Added by revision 0005, so after the rest (the order of `select *`; a test holds it).
    Column("stats_calls", Integer, default=0, server_default="0", nullable=False),
    Column("stats_rows_written", Integer, default=0, server_default="0", nullable=False),
    Column("stats_failures", Integer, default=0, server_default="0", nullable=False),
    Index(None, "app", "campaign_type", "started_at"),
    CheckConstraint("status in ('running', 'succeeded', 'failed', 'interrupted')", name="status"),
)


FOLDED = "last_run_id IS NOT NULL"  # a sync_warnings row a pass recorded since revision 0014

sync_warnings = Table(
    "sync_warnings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", BigId, ForeignKey("sync_runs.id", ondelete="CASCADE")),
    Column("campaign_id", BigId, ForeignKey("campaigns.id", ondelete="CASCADE")),
    Column("app", Text),
    Column("campaign_type", String(16)),
    Column("campaign_token", Text),
    Column("field", Text, nullable=False),
    Column("raw_value", Text),
    Column("message", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # One row for a problem, however many passes warn of it (db.warnings): how often,
    # until when, by which pass. NULLs: a row from before revision 0014, seen once.
    Column("times_seen", Integer, server_default="1", nullable=False),
    Column("last_seen_at", UTCDateTime),
    Column("last_run_id", BigId, ForeignKey("sync_runs.id", ondelete="SET NULL")),
    Index(None, "run_id"),
    Index(None, "campaign_id"),
    # db.warnings' lookups, over the rows a pass recorded since revision 0014 only (partial:
    # built at once over a table of millions of older rows, which stay out of every
    # lookup). Hash on PostgreSQL: a btree refuses a token over ~2,700 bytes that do not
    # compress, and such a token is warned of; a hash index of many equal keys builds in
    # quadratic time, and the rows it holds are one per problem (reviews' finds).
    Index(
        None,
        "campaign_token",
        postgresql_using="hash",
        postgresql_where=text(FOLDED),
        sqlite_where=text(FOLDED),
    ),
    Index(
        None,
        "raw_value",  # the entries that are no campaign: told apart by what they hold
        postgresql_using="hash",
        postgresql_where=text(f"campaign_token IS NULL AND {FOLDED}"),
        sqlite_where=text(f"campaign_token IS NULL AND {FOLDED}"),
    ),
)


# campaign_versions: A campaign's validity history: a row each time its detail really changed, it
# was deleted or it came back; `valid_to` is NULL on the current row (plan.version_row).
campaign_versions = Table(
    "campaign_versions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", BigId, _campaign_fk(), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("run_id", BigInteger),
    Column("content_hash", String(64)),
    Column("detail", JSONDocument, nullable=True),
    Column("version", Integer, nullable=False),
    Column("change_kind", String(16), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime),
    Index(None, "campaign_id", "recorded_at"),
    UniqueConstraint("campaign_id", "version"),
    CheckConstraint(
        "change_kind in ('created', 'changed', 'deleted', 'restored')", name="change_kind"
    ),
)


# campaign_updates: The audit trail of write-backs through Batch's update endpoint.
campaign_updates = Table(
    "campaign_updates",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("app", Text, nullable=False),
    Column("campaign_token", Text, nullable=False),
    Column("changed_fields", JSONDocument, nullable=True),
    Column("payload", JSONDocument, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("batch_status", Integer),
    Column("batch_code", Integer),
    Column("batch_type", Text),
    Column("message", Text),
    Index(None, "app", "campaign_token"),
)


# campaign_stats_daily: Batch's push statistics: one row per campaign, day and version (`all`, or
# the A/B test's `a` and `b`). Counters Batch does not give (or that cannot be typed) are NULL.
campaign_stats_daily = Table(
    "campaign_stats_daily",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", BigId, _campaign_fk(), nullable=False),
    Column("date", Date, nullable=False),
    Column("version", String(16), nullable=False),
    Column("sent", BigInteger),
    Column("sent_optins", BigInteger),
    Column("direct_open", BigInteger),
    Column("influenced_open", BigInteger),
    Column("reengaged", BigInteger),
    Column("errors", BigInteger),
    Column("fetched_at", UTCDateTime, nullable=False),
    UniqueConstraint("campaign_id", "date", "version"),
    Index(None, "date"),
)


# campaign_stats_fetches: The last stats request of each push campaign: when, and what came of it
# (`ok`, `no_stats` for a 404, `failed`). `fetched_at` moves only on `ok` and `no_stats`.
campaign_stats_fetches = Table(
    "campaign_stats_fetches",
    metadata,
    Column("campaign_id", BigId, _campaign_fk(), primary_key=True),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("fetched_at", UTCDateTime),
    Column("outcome", String(16), nullable=False),
    Column("days", Integer),
    Column("run_id", BigInteger),
    Column("error", Text),
)


# api_pacing: The request rate each app's passes learned from Batch's 429s (see
# `batch.ratelimit`), so that the next pass paces from its first request.
api_pacing = Table(
    "api_pacing",
    metadata,
    Column("app", Text, primary_key=True),
    Column("requests_per_second", Float, nullable=False),
    Column("limit_seen", Boolean, nullable=False),
    Column("learned_at", UTCDateTime, nullable=False),
)


def _describe(metadata: MetaData) -> None:
    """Every table's and column's meaning, from `db.descriptions` (the one source)."""
    for name, (meaning, columns) in TABLES.items():
        table = metadata.tables[name]
        table.comment = meaning
        for column, column_meaning in columns.items():
            table.c[column].comment = column_meaning


_describe(metadata)
