"""Appending to `campaign_versions`, the campaigns' validity history: a new row closes
the open one (`valid_to`) of its campaign. Which rows to append is decided by the plan
(`plan.version_row`) and, for deletions after a complete sweep, by `state.tombstone_unseen`.

Each document is stored once: the current version's `detail` is NULL, its content being
`campaigns.detail` (`v_campaign_versions.detail` reads it there). Closing a version gives
it its own copy, from `campaigns.detail`, which is why a version is closed before the
campaign's new content is written (docs/performance.md, "Loading details").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, case, select, update

from campaign_sync.db.bulk import insert_rows
from campaign_sync.db.models import campaign_versions, campaigns


def close_open_versions(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Close the open version of each row's campaign at the row's `valid_from`, keeping
    the content it had (`campaigns.detail`, not yet rewritten) unless it is a deletion.
    Rows of version 1 have nothing to close."""
    following = [row for row in rows if row["version"] > 1]
    if not following:
        return
    v = campaign_versions.c
    content = select(campaigns.c.detail).where(campaigns.c.id == v.campaign_id).scalar_subquery()
    conn.execute(
        update(campaign_versions)
        .where(v.campaign_id == bindparam("b_campaign_id"), v.valid_to.is_(None))
        .values(
            valid_to=bindparam("b_valid_to"),
            detail=case(
                (v.detail.is_not(None), v.detail),
                (v.change_kind != "deleted", content),
                else_=None,
            ),
        ),
        [
            {"b_campaign_id": row["campaign_id"], "b_valid_to": row["valid_from"]}
            for row in following
        ],
    )


def append_versions(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Close each campaign's open version (`close_open_versions`), then insert the rows,
    for campaigns whose content this transaction does not rewrite."""
    if not rows:
        return
    close_open_versions(conn, rows)
    insert_rows(conn, campaign_versions, rows)
