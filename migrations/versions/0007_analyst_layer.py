"""analyst layer: campaign_versions as a validity history (backfilled); reporting views;
every table, column and view described (COMMENT ON, PostgreSQL)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import DropColumnComment, DropTableComment, SetColumnComment, SetTableComment

from campaign_sync.db.descriptions import TABLES
from campaign_sync.db.models import metadata
from campaign_sync.db.past_views import views_at
from campaign_sync.db.views import PUSH_VIEWS, comment_views, create_views, drop_views

PUSH_VIEW_NAMES = {view.name for view in PUSH_VIEWS}

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Backfill, portable SQL: number each campaign's rows by time, chain their validity, give
# campaigns stored without history a first version, and close deleted ones with a row.
BACKFILL = (
    """
    update campaign_versions set version = (
        select count(*) from campaign_versions p
        where p.campaign_id = campaign_versions.campaign_id
          and (p.recorded_at < campaign_versions.recorded_at
               or (p.recorded_at = campaign_versions.recorded_at
                   and p.id <= campaign_versions.id)))
    """,
    """
    update campaign_versions set
        change_kind = case when version = 1 then 'created' else 'changed' end,
        valid_from = recorded_at,
        valid_to = (select n.recorded_at from campaign_versions n
                    where n.campaign_id = campaign_versions.campaign_id
                      and n.version = campaign_versions.version + 1)
    """,
    """
    insert into campaign_versions
        (campaign_id, recorded_at, run_id, content_hash, detail, version, change_kind,
         valid_from, valid_to)
    select c.id, c.updated_at, null, c.content_hash, c.detail, 1, 'created', c.updated_at, null
    from campaigns c
    where c.content_hash is not null
      and not exists (select 1 from campaign_versions v where v.campaign_id = c.id)
    """,
    """
    update campaign_versions set valid_to = (
        select c.deleted_at from campaigns c where c.id = campaign_versions.campaign_id)
    where valid_to is null and campaign_id in (
        select id from campaigns where deleted_at is not null)
    """,
    """
    insert into campaign_versions
        (campaign_id, recorded_at, run_id, content_hash, detail, version, change_kind,
         valid_from, valid_to)
    select c.id, c.deleted_at, null, null, null,
        coalesce((select max(v.version) from campaign_versions v where v.campaign_id = c.id),
                 0) + 1,
        'deleted', c.deleted_at, null
    from campaigns c
    where c.deleted_at is not null
    """,
)


def upgrade() -> None:
    with op.batch_alter_table("campaign_versions") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("change_kind", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("content_hash", existing_type=sa.String(length=64), nullable=True)
    for statement in BACKFILL:
        op.execute(statement)
    with op.batch_alter_table("campaign_versions") as batch:
        batch.alter_column("version", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("change_kind", existing_type=sa.String(length=16), nullable=False)
        batch.alter_column("valid_from", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.create_unique_constraint(
            op.f("uq_campaign_versions_campaign_id_version"), ["campaign_id", "version"]
        )
        batch.create_check_constraint(
            op.f("ck_campaign_versions_change_kind"),
            "change_kind in ('created', 'changed', 'deleted', 'restored')",
        )
    create_views(op.get_bind(), views_at("0007"))
    _comments(set_them=True)


def downgrade() -> None:
    _comments(set_them=False)
    drop_views(op.get_bind())
    op.execute("delete from campaign_versions where change_kind = 'deleted'")
    op.execute("update campaign_versions set content_hash = '' where content_hash is null")
    with op.batch_alter_table("campaign_versions") as batch:
        batch.drop_constraint(op.f("ck_campaign_versions_change_kind"), type_="check")
        batch.drop_constraint(op.f("uq_campaign_versions_campaign_id_version"), type_="unique")
        batch.alter_column("content_hash", existing_type=sa.String(length=64), nullable=False)
        batch.drop_column("valid_to")
        batch.drop_column("valid_from")
        batch.drop_column("change_kind")
        batch.drop_column("version")


def _comments(*, set_them: bool) -> None:
    """The descriptions of `db.descriptions` as `COMMENT ON` (PostgreSQL only: SQLite has
    no comments; docs/schema.md carries them for everyone). Only what exists at this
    revision: a later revision describes the tables and columns it adds."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    found = sa.inspect(bind)
    existing = set(found.get_table_names())
    for name, (_, columns) in TABLES.items():
        if name not in existing:
            continue
        table = metadata.tables[name]
        op.execute(SetTableComment(table) if set_them else DropTableComment(table))
        present = {column["name"] for column in found.get_columns(name)}
        for column in (table.c[c] for c in columns if c in present):
            op.execute(SetColumnComment(column) if set_them else DropColumnComment(column))
    # The push statistics views as described until 0012 changed a comment (db.past_views).
    push_views = tuple(view for view in views_at("0011") if view.name in PUSH_VIEW_NAMES)
    if set_them:
        comment_views(bind, views_at("0007") + push_views)
    else:  # the push statistics views stay (0005's): only their descriptions go
        comment_views(bind, push_views, clear=True)
