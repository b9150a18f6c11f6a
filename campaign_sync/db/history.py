"""Appending to `campaign_versions`, the campaigns' validity history: a new row closes
the open one (`valid_to`) of its campaign. Which rows to append is decided by the plan
(`plan.version_row`) and, for deletions after a complete sweep, by `state.tombstone_unseen`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, update

from campaign_sync.db.bulk import insert_rows
from campaign_sync.db.models import campaign_versions


def append_versions(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Close each campaign's open version at the new row's `valid_from`, then insert."""
    if not rows:
        return
    v = campaign_versions.c
    following = [row for row in rows if row["version"] > 1]  # version 1: nothing to close
    if following:
        conn.execute(
            update(campaign_versions)
            .where(v.campaign_id == bindparam("b_campaign_id"), v.valid_to.is_(None))
            .values(valid_to=bindparam("b_valid_to")),
            [
                {"b_campaign_id": row["campaign_id"], "b_valid_to": row["valid_from"]}
                for row in following
            ],
        )
    insert_rows(conn, campaign_versions, rows)
