"""sync_state: the pass lock as a lease (lock_holder, lock_expires_at, last_skipped_at)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 10:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(sa.Column("lock_holder", sa.Text(), nullable=True))
        batch.add_column(sa.Column("lock_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_skipped_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("last_skipped_at")
        batch.drop_column("lock_expires_at")
        batch.drop_column("lock_holder")
