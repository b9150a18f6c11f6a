"""api_pacing.limit_rate: the pace the last 429 that was not amid failures set, kept
across passes, so that 429s amid failures (each taking 5% off the pace) never take it
below 95% of it, however many passes such an incident lasts (batch.ratelimit). NULL for a
row from before, or an app whose passes met no such 429: the pace each pass starts at
stands in.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 19:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# db.descriptions when this was written, for PostgreSQL's COMMENT ON COLUMN.
COMMENT = (
    "The pace the last 429 that came amid no failures set (requests per second), kept "
    "across passes: 429s amid failures never take the pace below 95% of it; NULL: none "
    "met yet, or a row from before revision 0015."
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("api_pacing") as batch:
        comment = COMMENT if postgres else None
        batch.add_column(sa.Column("limit_rate", sa.Float(), nullable=True, comment=comment))


def downgrade() -> None:
    with op.batch_alter_table("api_pacing") as batch:
        batch.drop_column("limit_rate")
