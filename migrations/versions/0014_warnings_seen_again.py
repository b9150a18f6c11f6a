"""sync_warnings: a problem that lasts is one row, not one a pass. times_seen,
last_seen_at and last_run_id say how often and until when the same warning came back
(db.warnings); rows from before are each one sighting

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as sync_runs.id

# This revision's descriptions (db.descriptions when it was written), for PostgreSQL's
# COMMENT ON COLUMN.
COMMENTS = {
    "times_seen": "How many times the warning was recorded: again by the same pass, or by the "
    "next pass of the app and type (db.warnings).",
    "last_seen_at": "When the warning was last recorded (created_at: when it first was).",
    "last_run_id": "The pass that last recorded it (sync_runs.id); NULL for a write-back.",
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"

    def comment(name: str) -> str | None:
        return COMMENTS[name] if postgres else None

    with op.batch_alter_table("sync_warnings") as batch:
        batch.add_column(
            sa.Column(
                "times_seen",
                sa.Integer(),
                server_default="1",
                nullable=False,
                comment=comment("times_seen"),
            )
        )
        batch.add_column(
            sa.Column(
                "last_seen_at",
                sa.DateTime(timezone=True),
                nullable=True,
                comment=comment("last_seen_at"),
            )
        )
        batch.add_column(
            sa.Column("last_run_id", BIG_ID, nullable=True, comment=comment("last_run_id"))
        )
    op.execute("update sync_warnings set last_seen_at = created_at, last_run_id = run_id")
    with op.batch_alter_table("sync_warnings") as batch:
        batch.alter_column(
            "last_seen_at",
            existing_type=sa.DateTime(timezone=True),
            existing_comment=comment("last_seen_at"),
            nullable=False,
        )
        batch.create_foreign_key(
            "fk_sync_warnings_last_run_id_sync_runs",
            "sync_runs",
            ["last_run_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("ix_sync_warnings_last_run_id", ["last_run_id"])


def downgrade() -> None:
    with op.batch_alter_table("sync_warnings") as batch:
        batch.drop_index("ix_sync_warnings_last_run_id")
        batch.drop_constraint("fk_sync_warnings_last_run_id_sync_runs", type_="foreignkey")
        batch.drop_column("last_run_id")
        batch.drop_column("last_seen_at")
        batch.drop_column("times_seen")
