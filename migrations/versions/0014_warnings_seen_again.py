"""sync_warnings: one row for a problem, however many passes warn of it. times_seen,
last_seen_at and last_run_id say how often, until when and by which pass; message keeps
the latest wording; partial indexes (hash, on PostgreSQL) on campaign_token and, for
entries with no token, raw_value find the row among those recorded since (db.warnings).
Rows from before are left as they are, out of those lookups: each one sighting,
last_seen_at and last_run_id NULL (no rewrite of a table that may hold millions of them,
no index over their duplicates)

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
INDEX = "ix_sync_warnings_campaign_token"
NO_TOKEN_INDEX = "ix_sync_warnings_raw_value"
FOLDED = "last_run_id IS NOT NULL"  # db.models.FOLDED when this was written
FOREIGN_KEY = "fk_sync_warnings_last_run_id_sync_runs"

# This revision's descriptions (db.descriptions when it was written), for PostgreSQL's
# COMMENT ON COLUMN; `message`'s before it, for the way down.
COMMENTS = {
    "times_seen": "How many times passes warned of it: a warning identical to one a pass "
    "recorded (app, type, token, campaign, field, raw value) counts here (db.warnings).",
    "last_seen_at": "When a pass last warned of it (created_at: first); NULL for a row from "
    "before revision 0014.",
    "last_run_id": "The pass that last warned of it (sync_runs.id); NULL for a write-back's "
    "row and one from before revision 0014.",
    "message": "What is wrong with it (the latest wording).",
}
MESSAGE_BEFORE = "What is wrong with it."


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"

    def comment(name: str) -> str | None:
        return COMMENTS[name] if postgres else None

    # Columns without a value to compute for the rows already there: PostgreSQL adds
    # them without rewriting the table (times_seen's constant default included).
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
            sa.Column("last_seen_at", sa.DateTime(timezone=True), comment=comment("last_seen_at"))
        )
        batch.add_column(sa.Column("last_run_id", BIG_ID, comment=comment("last_run_id")))
        batch.create_foreign_key(
            FOREIGN_KEY, "sync_runs", ["last_run_id"], ["id"], ondelete="SET NULL"
        )
        # Partial: no row is a pass's since 0014 yet, so they build at once.
        for name, column, where in (
            (INDEX, "campaign_token", FOLDED),
            (NO_TOKEN_INDEX, "raw_value", f"campaign_token IS NULL AND {FOLDED}"),
        ):
            batch.create_index(
                name,
                [column],
                postgresql_using="hash",
                postgresql_where=sa.text(where),
                sqlite_where=sa.text(where),
            )
        if postgres:
            batch.alter_column(
                "message",
                existing_type=sa.Text(),
                existing_nullable=False,
                comment=COMMENTS["message"],
                existing_comment=MESSAGE_BEFORE,
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("sync_warnings") as batch:
        batch.drop_index(NO_TOKEN_INDEX)
        batch.drop_index(INDEX)
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")
        batch.drop_column("last_run_id")
        batch.drop_column("last_seen_at")
        batch.drop_column("times_seen")
        if postgres:
            batch.alter_column(
                "message",
                existing_type=sa.Text(),
                existing_nullable=False,
                comment=MESSAGE_BEFORE,
                existing_comment=COMMENTS["message"],
            )
