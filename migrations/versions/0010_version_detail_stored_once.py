"""each document stored once: the current version's detail is NULL in campaign_versions
(it is campaigns.detail); v_campaign_versions reads it there and shows every version's
detail in a new column

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from alembic import op
from sqlalchemy import text

from campaign_sync.db.descriptions import TABLES
from campaign_sync.db.past_views import views_at
from campaign_sync.db.views import JsonSQL, View, comment_views, json_sql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLACED = ("v_campaign_versions", "v_campaign_changes")  # the second reads the first

# Portable SQL. Only a current version whose detail is campaigns.detail gives it up; a
# deletion has none, and a row that differs (written by hand) keeps its own.
FORGET_CURRENT_DETAIL = """
update campaign_versions set detail = null
where valid_to is null and change_kind <> 'deleted' and detail is not null
  and content_hash = (select c.content_hash from campaigns c
                      where c.id = campaign_versions.campaign_id)
"""
RESTORE_CURRENT_DETAIL = """
update campaign_versions set detail = (
    select c.detail from campaigns c where c.id = campaign_versions.campaign_id)
where valid_to is null and change_kind <> 'deleted' and detail is null
"""

OLD_DETAIL_COMMENT = "The detail of this version (JSON); NULL for a deleted version."


def _replace_views(views: tuple[View, ...]) -> None:
    conn = op.get_bind()
    j = json_sql(conn.dialect.name)
    for name in reversed(REPLACED):
        conn.execute(text(f"drop view if exists {name}"))
    for view in views:
        sql: Callable[[JsonSQL], str] | None = view.sql
        assert sql is not None
        conn.execute(text(f"create view {view.name} as {sql(j)}"))
    comment_views(conn, views)


def _comment_detail(comment: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        quoted = "'" + comment.replace("'", "''") + "'"
        op.execute(f"comment on column campaign_versions.detail is {quoted}")


def _replaced_at(revision: str) -> tuple[View, ...]:
    return tuple(view for view in views_at(revision) if view.name in REPLACED)


def upgrade() -> None:
    _replace_views(_replaced_at("0010"))
    op.execute(FORGET_CURRENT_DETAIL)
    _comment_detail(TABLES["campaign_versions"][1]["detail"])


def downgrade() -> None:
    op.execute(RESTORE_CURRENT_DETAIL)
    _replace_views(_replaced_at("0007"))
    _comment_detail(OLD_DETAIL_COMMENT)
