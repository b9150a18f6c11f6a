"""sync_state.sweep_unidentified_entries: list entries of the sweep that are no campaign

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(
            sa.Column(
                "sweep_unidentified_entries", sa.Integer(), nullable=False, server_default="0"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("sweep_unidentified_entries")
