"""v_campaign_versions: the schedule names each time's clock and the recurrence's end (a
change of either was other_changed), with schedule_zone, recurrence_end_date and
content_hash; v_campaign_changes: a campaign back with other content than it left with
shows other_changed when no named kind covers it; v_push_performance and
v_push_performance_total: deleted_at

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 12:00:00
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from alembic import op
from sqlalchemy import text

from campaign_sync.db.past_views import views_at
from campaign_sync.db.views import JsonSQL, View, comment_views, json_sql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Dropped in this order (each reads the ones after it), created in the reverse one.
REPLACED = ("v_campaign_changes", "v_campaign_versions", "v_push_performance_total",
            "v_push_performance")  # fmt: skip
ADDED_COLUMNS = {
    "v_campaign_versions": ("schedule_zone", "recurrence_end_date", "content_hash"),
    "v_push_performance": ("deleted_at",),
    "v_push_performance_total": ("deleted_at",),
}


def _views_0010() -> tuple[View, ...]:
    """The four views as revision 0010 left them: v_campaign_versions and
    v_campaign_changes from `db.past_views`, the push statistics views as 0005 wrote
    them."""
    script = op.get_context().script
    assert script is not None
    made_by_0005 = script.get_revision("0005").module
    push_sql = {
        "v_push_performance": made_by_0005.V_PUSH_PERFORMANCE,
        "v_push_performance_total": made_by_0005.V_PUSH_PERFORMANCE_TOTAL,
    }
    at_0010 = {view.name: view for view in views_at("0010")}
    current = {view.name: view for view in views_at("0011")}
    old = []
    for name in reversed(REPLACED):
        if name in at_0010:
            old.append(at_0010[name])
            continue
        view = current[name]
        columns = {k: v for k, v in view.columns.items() if k not in ADDED_COLUMNS.get(name, ())}
        sql = push_sql[name].split(" as\n", 1)[1]  # 0005's text is "create view ... as"
        old.append(replace(view, columns=columns, sql=_as_written(sql)))
    return tuple(old)


def _as_written(sql: str) -> Callable[[JsonSQL], str]:
    """A view's SQL that is the same on every dialect."""
    return lambda _j: sql


def _replace(views: tuple[View, ...]) -> None:
    conn = op.get_bind()
    j = json_sql(conn.dialect.name)
    for name in REPLACED:
        conn.execute(text(f"drop view if exists {name}"))
    for view in views:
        assert view.sql is not None
        conn.execute(text(f"create view {view.name} as {view.sql(j)}"))
    comment_views(conn, views)


def upgrade() -> None:
    made = {view.name: view for view in views_at("0011")}  # this revision's, not today's
    _replace(tuple(made[name] for name in reversed(REPLACED)))


def downgrade() -> None:
    _replace(_views_0010())
