"""v_campaign_changes: other_changed also beside named changes (a rename and a label
change in one version showed only `renamed`), message_changed's values NULL only without
messages, run_id described for write-backs; v_push_performance_total: sent_optins_a and
sent_optins_b (Batch gives an A/B test's opt-in sends only per version)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

from campaign_sync.db.past_views import views_at
from campaign_sync.db.views import View, comment_views, json_sql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLACED = ("v_campaign_changes", "v_push_performance_total")  # no view reads either


def _replace(views: tuple[View, ...]) -> None:
    conn = op.get_bind()
    j = json_sql(conn.dialect.name)
    chosen = tuple(view for view in views if view.name in REPLACED)
    for view in chosen:
        assert view.sql is not None
        conn.execute(text(f"drop view if exists {view.name}"))
        conn.execute(text(f"create view {view.name} as {view.sql(j)}"))
    comment_views(conn, chosen)


def upgrade() -> None:
    _replace(views_at("0012"))  # this revision's, not today's


def downgrade() -> None:
    _replace(views_at("0011"))
