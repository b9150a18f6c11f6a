"""each document stored once: the current version's detail is NULL in campaign_versions
(it is campaigns.detail); v_campaign_versions reads it there and shows every version's
detail in a new column

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from alembic import op
from sqlalchemy import text

from campaign_sync.db.descriptions import TABLES
from campaign_sync.db.views import VIEWS, JsonSQL, View, comment_views, json_sql

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
OLD_CHANGES_DESCRIPTION_END = "compare the versions' detail in campaign_versions."


def _v_campaign_versions_0009(j: JsonSQL) -> str:
    """v_campaign_versions as revisions 0007-0009 made it (every version's detail in
    campaign_versions)."""
    d = "v.detail"
    contents = (("messages",), ("landing", "contents"))

    def messages(value: str) -> str:
        return (
            f"(select {j.ordered_text(value, ' | ', j.position('e'))} "
            f"from {j.elements(d, contents, 'e')})"
        )

    title, body = j.element_field("e", "title"), j.element_field("e", "body")
    language = j.element_field("e", "language")
    starts = (
        f"coalesce({j.text(d, 'push_time')}, {j.text(d, 'start_date')}, "
        f"{j.text(d, 'local_push_time')}, {j.text(d, 'local_start_date')})"
    )
    ends = f"coalesce({j.text(d, 'end_date')}, {j.text(d, 'local_end_date')})"
    segments = (
        f"(select {j.ordered_text(j.element_text('s'), ', ', j.position('s'))} "
        f"from {j.elements(d, (('targeting', 'segments'),), 's')})"
    )
    unit = j.text(d, "recurrence", "repeat_unit")
    frequency = j.text(d, "recurrence", "repeat_frequency")
    return f"""
select
    v.campaign_id, c.app, c.campaign_type, c.campaign_token, v.version, v.change_kind,
    v.valid_from, v.valid_to, v.valid_to is null as is_current, v.run_id,
    {j.text(d, "name")} as name, {j.boolean(d, "live")} as live,
    {starts} as starts_at, {ends} as ends_at,
    {unit} as recurrence_repeat_unit, {frequency} as recurrence_repeat_frequency,
    nullif(trim(coalesce('starts ' || {starts} || ' ', '')
        || coalesce('ends ' || {ends} || ' ', '')
        || coalesce('every ' || coalesce({frequency}, '1') || ' ' || {unit}, '')), '')
        as schedule,
    {messages(f"coalesce({language}, '?') || ': ' || coalesce({title}, '')")}
        as message_titles,
    {messages(f"coalesce({language}, '?') || ': ' || coalesce({body}, '')")}
        as message_bodies,
    nullif(trim(coalesce('segments ' || {segments}, '')
        || coalesce(' query ' || coalesce({j.text(d, "targeting", "query")}, {j.text(d, "query")}),
                    '')), '') as targeting
from campaign_versions v
join campaigns c on c.id = v.campaign_id
"""


def _views_0009() -> tuple[View, ...]:
    """The two views as 0009 described them."""
    current = {view.name: view for view in VIEWS}
    versions = current["v_campaign_versions"]
    changes = current["v_campaign_changes"]
    return (
        replace(
            versions,
            columns={k: v for k, v in versions.columns.items() if k != "detail"},
            sql=_v_campaign_versions_0009,
        ),
        replace(
            changes,
            description=changes.description.replace(
                "compare the versions' detail in v_campaign_versions.",
                OLD_CHANGES_DESCRIPTION_END,
            ),
        ),
    )


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


def upgrade() -> None:
    _replace_views(tuple(view for view in VIEWS if view.name in REPLACED))
    op.execute(FORGET_CURRENT_DETAIL)
    _comment_detail(TABLES["campaign_versions"][1]["detail"])


def downgrade() -> None:
    op.execute(RESTORE_CURRENT_DETAIL)
    _replace_views(_views_0009())
    _comment_detail(OLD_DETAIL_COMMENT)
