"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 13:51:11.358716
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# jsonb on PostgreSQL, JSON on SQLite; ids are BIGINT except on SQLite (INTEGER PRIMARY KEY).
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaign_updates",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("app", sa.Text(), nullable=False),
        sa.Column("campaign_token", sa.Text(), nullable=False),
        sa.Column("changed_fields", JSON_DOCUMENT, nullable=True),
        sa.Column("payload", JSON_DOCUMENT, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("batch_status", sa.Integer(), nullable=True),
        sa.Column("batch_code", sa.Integer(), nullable=True),
        sa.Column("batch_type", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_updates")),
    )
    with op.batch_alter_table("campaign_updates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_updates_app_campaign_token"),
            ["app", "campaign_token"],
            unique=False,
        )

    op.create_table(
        "campaigns",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("app", sa.Text(), nullable=False),
        sa.Column("campaign_type", sa.String(length=16), nullable=False),
        sa.Column("campaign_token", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("live", sa.Boolean(), nullable=True),
        sa.Column("from_api", sa.Boolean(), nullable=True),
        sa.Column("dev_only", sa.Boolean(), nullable=True),
        sa.Column("created_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("push_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("start_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("local_push_time", sa.DateTime(), nullable=True),
        sa.Column("local_start_date", sa.DateTime(), nullable=True),
        sa.Column("local_end_date", sa.DateTime(), nullable=True),
        sa.Column("deeplink", sa.Text(), nullable=True),
        sa.Column("custom_payload", JSON_DOCUMENT, nullable=True),
        sa.Column("capping", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Text(), nullable=True),
        sa.Column("time_to_live", sa.BigInteger(), nullable=True),
        sa.Column("labels", JSON_DOCUMENT, nullable=True),
        sa.Column("recurrence_repeat_unit", sa.Text(), nullable=True),
        sa.Column("recurrence_repeat_frequency", sa.Integer(), nullable=True),
        sa.Column("recurrence_end_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("theme", sa.Text(), nullable=True),
        sa.Column("landing_image", sa.Text(), nullable=True),
        sa.Column("gcm_collapse_key", JSON_DOCUMENT, nullable=True),
        sa.Column("detail", JSON_DOCUMENT, nullable=True),
        sa.Column("list_entry", JSON_DOCUMENT, nullable=True),
        sa.Column("list_hash", sa.String(length=64), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("last_sweep_id", sa.Integer(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail_fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "campaign_type in ('push', 'in_app')", name=op.f("ck_campaigns_campaign_type")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint(
            "app",
            "campaign_type",
            "campaign_token",
            name=op.f("uq_campaigns_app_campaign_type_campaign_token"),
        ),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaigns_app_campaign_type_last_sweep_id"),
            ["app", "campaign_type", "last_sweep_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_campaigns_campaign_type"), ["campaign_type"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_campaigns_created_date"), ["created_date"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_campaigns_live"), ["live"], unique=False)

    op.create_table(
        "sync_runs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("app", sa.Text(), nullable=False),
        sa.Column("campaign_type", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("full_refresh", sa.Boolean(), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=True),
        sa.Column("sweep_complete", sa.Boolean(), nullable=False),
        sa.Column("list_calls", sa.Integer(), nullable=False),
        sa.Column("detail_calls", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("campaigns_inserted", sa.Integer(), nullable=False),
        sa.Column("campaigns_updated", sa.Integer(), nullable=False),
        sa.Column("campaigns_unchanged", sa.Integer(), nullable=False),
        sa.Column("campaigns_deleted", sa.Integer(), nullable=False),
        sa.Column("warnings", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("host", sa.Text(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status in ('running', 'succeeded', 'failed', 'interrupted')",
            name=op.f("ck_sync_runs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_runs_app_campaign_type_started_at"),
            ["app", "campaign_type", "started_at"],
            unique=False,
        )

    op.create_table(
        "sync_state",
        sa.Column("app", sa.Text(), nullable=False),
        sa.Column("campaign_type", sa.String(length=16), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("sweep_in_progress", sa.Boolean(), nullable=False),
        sa.Column("sweep_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sweep_offset", sa.Integer(), nullable=False),
        sa.Column("sweep_anchor_tokens", JSON_DOCUMENT, nullable=True),
        sa.Column("sweep_full_refresh", sa.Boolean(), nullable=False),
        sa.Column("last_complete_sweep_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("app", "campaign_type", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "message_actions",
        sa.Column("campaign_id", BIG_ID, nullable=False),
        sa.Column("message_position", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("args", JSON_DOCUMENT, nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_message_actions_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "message_position", "position", name=op.f("pk_message_actions")
        ),
    )
    op.create_table(
        "messages",
        sa.Column("campaign_id", BIG_ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("language", sa.Text(), nullable=True),
        sa.Column("header", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("image", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_messages_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "position", name=op.f("pk_messages")),
    )
    op.create_table(
        "sync_warnings",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", BIG_ID, nullable=True),
        sa.Column("campaign_id", BIG_ID, nullable=True),
        sa.Column("app", sa.Text(), nullable=True),
        sa.Column("campaign_type", sa.String(length=16), nullable=True),
        sa.Column("campaign_token", sa.Text(), nullable=True),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("raw_value", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_sync_warnings_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.id"],
            name=op.f("fk_sync_warnings_run_id_sync_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_warnings")),
    )
    with op.batch_alter_table("sync_warnings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_warnings_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_sync_warnings_run_id"), ["run_id"], unique=False)

    op.create_table(
        "targeting",
        sa.Column("campaign_id", BIG_ID, nullable=False),
        sa.Column("segments", JSON_DOCUMENT, nullable=True),
        sa.Column("query", JSON_DOCUMENT, nullable=True),
        sa.Column("lang", JSON_DOCUMENT, nullable=True),
        sa.Column("region", JSON_DOCUMENT, nullable=True),
        sa.Column("custom_audience", JSON_DOCUMENT, nullable=True),
        sa.Column("extra", JSON_DOCUMENT, nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_targeting_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_targeting")),
    )
    op.create_table(
        "triggers",
        sa.Column("campaign_id", BIG_ID, nullable=False),
        sa.Column("trigger_when", sa.Text(), nullable=True),
        sa.Column("event", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("capping", sa.Integer(), nullable=True),
        sa.Column("grace_period_every", sa.Integer(), nullable=True),
        sa.Column("grace_period_unit", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_triggers_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_triggers")),
    )


def downgrade() -> None:
    op.drop_table("triggers")
    op.drop_table("targeting")
    with op.batch_alter_table("sync_warnings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_warnings_run_id"))
        batch_op.drop_index(batch_op.f("ix_sync_warnings_campaign_id"))

    op.drop_table("sync_warnings")
    op.drop_table("messages")
    op.drop_table("message_actions")
    op.drop_table("sync_state")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_runs_app_campaign_type_started_at"))

    op.drop_table("sync_runs")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_live"))
        batch_op.drop_index(batch_op.f("ix_campaigns_created_date"))
        batch_op.drop_index(batch_op.f("ix_campaigns_campaign_type"))
        batch_op.drop_index(batch_op.f("ix_campaigns_app_campaign_type_last_sweep_id"))

    op.drop_table("campaigns")
    with op.batch_alter_table("campaign_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_updates_app_campaign_token"))

    op.drop_table("campaign_updates")
