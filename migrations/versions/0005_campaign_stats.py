"""push campaign statistics: campaign_stats_daily, campaign_stats_fetches, sync_runs stats
counters, and the views v_push_performance and v_push_performance_total

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COUNTERS = ("sent", "sent_optins", "direct_open", "influenced_open", "reengaged", "errors")
RUN_COUNTERS = ("stats_calls", "stats_rows_written", "stats_failures")

# Portable SQL (PostgreSQL and SQLite): `* 1.0` makes the division decimal on both, and
# NULLIF leaves the open rate NULL for a day that sent nothing.
V_PUSH_PERFORMANCE = """
create view v_push_performance as
select
    s.campaign_id,
    s.date,
    s.version,
    s.sent,
    s.sent_optins,
    s.direct_open,
    s.influenced_open,
    s.reengaged,
    s.errors,
    (s.direct_open + s.influenced_open) * 1.0 / nullif(s.sent, 0) as open_rate,
    c.name,
    c.app,
    c.campaign_token,
    c.push_time,
    c.local_push_time,
    s.fetched_at
from campaign_stats_daily s
join campaigns c on c.id = s.campaign_id
"""

V_PUSH_PERFORMANCE_TOTAL = """
create view v_push_performance_total as
select
    c.id as campaign_id,
    c.name,
    c.app,
    c.campaign_token,
    c.push_time,
    c.local_push_time,
    min(s.date) as first_date,
    max(s.date) as last_date,
    sum(case when s.version = 'all' then s.sent end) as sent,
    sum(case when s.version = 'all' then s.sent_optins end) as sent_optins,
    sum(case when s.version = 'all' then s.direct_open end) as direct_open,
    sum(case when s.version = 'all' then s.influenced_open end) as influenced_open,
    sum(case when s.version = 'all' then s.reengaged end) as reengaged,
    sum(case when s.version = 'all' then s.errors end) as errors,
    (sum(case when s.version = 'all' then s.direct_open end)
        + sum(case when s.version = 'all' then s.influenced_open end)) * 1.0
        / nullif(sum(case when s.version = 'all' then s.sent end), 0) as open_rate,
    sum(case when s.version = 'a' then s.sent end) as sent_a,
    (sum(case when s.version = 'a' then s.direct_open end)
        + sum(case when s.version = 'a' then s.influenced_open end)) * 1.0
        / nullif(sum(case when s.version = 'a' then s.sent end), 0) as open_rate_a,
    sum(case when s.version = 'b' then s.sent end) as sent_b,
    (sum(case when s.version = 'b' then s.direct_open end)
        + sum(case when s.version = 'b' then s.influenced_open end)) * 1.0
        / nullif(sum(case when s.version = 'b' then s.sent end), 0) as open_rate_b,
    max(s.fetched_at) as fetched_at
from campaigns c
join campaign_stats_daily s on s.campaign_id = c.id
group by c.id, c.name, c.app, c.campaign_token, c.push_time, c.local_push_time
"""


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        for name in RUN_COUNTERS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))

    op.create_table(
        "campaign_stats_daily",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", BIG_ID, nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=True) for name in COUNTERS),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_stats_daily_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_stats_daily")),
        sa.UniqueConstraint(
            "campaign_id",
            "date",
            "version",
            name=op.f("uq_campaign_stats_daily_campaign_id_date_version"),
        ),
    )
    op.create_index(
        op.f("ix_campaign_stats_daily_date"), "campaign_stats_daily", ["date"], unique=False
    )

    op.create_table(
        "campaign_stats_fetches",
        sa.Column("campaign_id", BIG_ID, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_stats_fetches_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_stats_fetches")),
    )

    op.execute(V_PUSH_PERFORMANCE)
    op.execute(V_PUSH_PERFORMANCE_TOTAL)


def downgrade() -> None:
    op.execute("drop view v_push_performance_total")
    op.execute("drop view v_push_performance")
    op.drop_table("campaign_stats_fetches")
    op.drop_index(op.f("ix_campaign_stats_daily_date"), table_name="campaign_stats_daily")
    op.drop_table("campaign_stats_daily")
    with op.batch_alter_table("sync_runs") as batch:
        for name in reversed(RUN_COUNTERS):
            batch.drop_column(name)
