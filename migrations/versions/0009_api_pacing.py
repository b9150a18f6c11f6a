"""api_pacing: the request rate each app learned from Batch's 429s, kept across passes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from campaign_sync.db.descriptions import TABLES

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    meaning, columns = TABLES["api_pacing"]
    op.create_table(
        "api_pacing",
        sa.Column("app", sa.Text(), nullable=False, comment=columns["app"]),
        sa.Column(
            "requests_per_second",
            sa.Float(),
            nullable=False,
            comment=columns["requests_per_second"],
        ),
        sa.Column("limit_seen", sa.Boolean(), nullable=False, comment=columns["limit_seen"]),
        sa.Column(
            "learned_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment=columns["learned_at"],
        ),
        sa.PrimaryKeyConstraint("app", name=op.f("pk_api_pacing")),
        comment=meaning,
    )


def downgrade() -> None:
    op.drop_table("api_pacing")
