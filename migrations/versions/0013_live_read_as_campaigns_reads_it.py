"""v_campaign_versions reads `live` as campaigns.live does (text "true"/"false" too) and
shows it as sent (`live_as_sent`); v_campaign_changes' went_live and stopped only go from
one readable live to the other (text "true", or an unreadable value, showed a stop that
never happened: an unreadable live counted as false). The yes/no columns of campaigns
(live, from_api, dev_only) read text with ASCII whitespace around only, as the views do:
stored rows read before with Python's wider whitespace are read again. sync_state keeps a
fingerprint of the live API key each app and type is swept with
(api_key_fingerprint): a pass with another key is refused

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 06:00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

from campaign_sync.db.past_views import views_at
from campaign_sync.db.views import DESCRIBED_VIEWS, View, comment_views, create_views, json_sql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLACED = ("v_campaign_versions", "v_campaign_changes")  # the second reads the first


def _replace(views: tuple[View, ...], *, in_place: bool) -> None:
    """Make REPLACED as `views` has them. `in_place` (going up, on PostgreSQL): CREATE OR
    REPLACE, which keeps an analyst's own views built on them (dropping them failed the
    migration: "other objects depend on it"); possible as 0013 only adds a column at the
    end. Going down drops the column, so the views are dropped and made again."""
    conn = op.get_bind()
    made = {view.name: view for view in views}
    chosen = tuple(made[name] for name in REPLACED)
    in_place = in_place and conn.dialect.name == "postgresql"
    if not in_place:
        for view in reversed(chosen):
            conn.execute(text(f"drop view if exists {view.name}"))
    create_views(conn, chosen, if_missing=in_place)  # PostgreSQL's CREATE OR REPLACE
    comment_views(conn, chosen)


# The rule of this revision, frozen here: text true/false in any case, with only ASCII
# whitespace around (domain.BOOLEAN_TEXT_SPACE when it was written).
SPACE = " \t\n\r\x0b\x0c"
FLAGS = ("live", "from_api", "dev_only")
FINGERPRINT = (
    "A fingerprint (keyed BLAKE2b, not the key) of the live API key the campaigns were "
    "swept with: a pass with another key is refused."
)


def _read(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    reading = value.strip(SPACE).lower() if isinstance(value, str) else None
    return reading == "true" if reading in ("true", "false") else None


def _read_flags_again() -> None:
    """campaigns' yes/no columns whose detail holds text there, read by this revision's
    rule: before, "\u00a0true" was true in campaigns.live and NULL in the views. Only
    rows with text in one of the three keys are read (a handful, if any)."""
    conn = op.get_bind()
    j = json_sql(conn.dialect.name)
    sent = [j.json_text("detail", flag) for flag in FLAGS]
    with_text = " or ".join(f"{value} like '\"%'" for value in sent)
    found = conn.execute(
        text(f"select id, {', '.join(FLAGS)}, {', '.join(sent)} from campaigns where {with_text}")
    )
    fixes = []
    for row in found:
        stored, given = list(row[1:4]), row[4:7]
        read = [
            _read(json.loads(value)) if value is not None and value.startswith('"') else old
            for value, old in zip(given, stored, strict=True)
        ]
        if read != stored:
            fixes.append({"id": row[0], **dict(zip(FLAGS, read, strict=True))})
    if fixes:
        conn.execute(
            text(
                "update campaigns set live = :live, from_api = :from_api, dev_only = :dev_only "
                "where id = :id"
            ),
            fixes,
        )


def upgrade() -> None:
    _replace(DESCRIBED_VIEWS, in_place=True)
    _read_flags_again()
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(
            sa.Column(
                "api_key_fingerprint",
                sa.String(32),
                nullable=True,
                comment=FINGERPRINT if postgres else None,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("api_key_fingerprint")
    _replace(views_at("0012"), in_place=False)
