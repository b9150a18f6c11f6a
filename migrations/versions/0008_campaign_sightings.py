"""campaign_sightings: the seen mark of each campaign in a narrow table of its own (HOT
updates), campaigns.last_sweep_id and its index dropped

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 12:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SetColumnComment, SetTableComment

from campaign_sync.db.models import SIGHTINGS_FILLFACTOR, metadata

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SWEEP_INDEX = "ix_campaigns_app_campaign_type_last_sweep_id"
# 0007's descriptions of what this revision changes, for the downgrade.
LAST_SWEEP_ID_0007 = "The last sweep (sync_state.sweep_id) whose list showed it."
LAST_SEEN_AT_0007 = "When a list last showed it (UTC)."


def upgrade() -> None:
    op.create_table(
        "campaign_sightings",
        sa.Column("campaign_id", BIG_ID, nullable=False),
        sa.Column("last_sweep_id", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_sightings_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_sightings")),
        postgresql_with={"fillfactor": SIGHTINGS_FILLFACTOR},
    )
    op.execute(
        "insert into campaign_sightings (campaign_id, last_sweep_id, last_seen_at) "
        "select id, last_sweep_id, last_seen_at from campaigns where last_sweep_id is not null"
    )
    op.drop_index(SWEEP_INDEX, table_name="campaigns")
    op.drop_column("campaigns", "last_sweep_id")  # SQLite >= 3.35 drops it in place
    if op.get_bind().dialect.name == "postgresql":
        sightings = metadata.tables["campaign_sightings"]
        op.execute(SetTableComment(sightings))
        for column in sightings.columns:
            op.execute(SetColumnComment(column))
        op.execute(SetColumnComment(metadata.tables["campaigns"].c.last_seen_at))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "campaigns",
        sa.Column(
            "last_sweep_id",
            sa.Integer(),
            nullable=True,
            comment=LAST_SWEEP_ID_0007 if postgres else None,
        ),
    )
    op.execute(
        "update campaigns set "
        "last_sweep_id = (select s.last_sweep_id from campaign_sightings s "
        "where s.campaign_id = campaigns.id), "
        "last_seen_at = coalesce((select s.last_seen_at from campaign_sightings s "
        "where s.campaign_id = campaigns.id), last_seen_at)"
    )
    op.create_index(SWEEP_INDEX, "campaigns", ["app", "campaign_type", "last_sweep_id"])
    op.drop_table("campaign_sightings")
    if postgres:
        op.alter_column(
            "campaigns",
            "last_seen_at",
            existing_type=sa.DateTime(timezone=True),
            existing_nullable=False,
            comment=LAST_SEEN_AT_0007,
        )
