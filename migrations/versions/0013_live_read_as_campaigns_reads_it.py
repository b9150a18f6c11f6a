"""v_campaign_versions reads `live` as campaigns.live does (text "true"/"false" too) and
shows it as sent (`live_as_sent`); v_campaign_changes' went_live and stopped only go from
one readable live to the other (text "true", or an unreadable value, showed a stop that
never happened: an unreadable live counted as false)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

from campaign_sync.db.past_views import views_at
from campaign_sync.db.views import DESCRIBED_VIEWS, View, comment_views, json_sql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLACED = ("v_campaign_versions", "v_campaign_changes")  # the second reads the first


def _replace(views: tuple[View, ...]) -> None:
    conn = op.get_bind()
    j = json_sql(conn.dialect.name)
    made = {view.name: view for view in views}
    chosen = tuple(made[name] for name in REPLACED)
    for view in reversed(chosen):
        conn.execute(text(f"drop view if exists {view.name}"))
    for view in chosen:
        assert view.sql is not None
        conn.execute(text(f"create view {view.name} as {view.sql(j)}"))
    comment_views(conn, chosen)


def upgrade() -> None:
    _replace(DESCRIBED_VIEWS)


def downgrade() -> None:
    _replace(views_at("0012"))
