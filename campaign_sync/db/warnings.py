"""Writing `sync_warnings`: one row for a problem while it lasts, not one a pass.

A warning identical to one that the same pass or the app and type's previous pass recorded
(same app, type, campaign token, campaign, field, raw value and message) extends that row:
`times_seen` grows, `last_seen_at` and `last_run_id` move. Anything else is a row of its
own: a problem that a pass did not see (gone, or that pass failed or stopped before its
page) starts a new row when it comes back, so `created_at` still tells when each spell
began. A write-back's warnings (no run) are each a row.

Why: what stays wrong in Batch's list itself (an entry that is no campaign, a token no
request can carry, a listed campaign whose detail answers 404) was warned again at every
pass, a row each time: 288 rows a day for one such entry at a pass every 5 minutes,
for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, update

from campaign_sync.db.bulk import insert_rows
from campaign_sync.db.models import sync_runs, sync_warnings

# What makes two warnings the same problem (the pass's app and type come with the run).
SAME = ("campaign_token", "campaign_id", "field", "raw_value", "message")


def record_warnings(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write warning rows (`loader.warning_row`'s dicts; all of one pass, or of none) in
    `conn`'s transaction: each extends the matching row of this pass or the pair's
    previous one, or is inserted (`times_seen` the number of identical rows given).

    One query reads the rows that may match (only when `rows` has a pass's warnings),
    one `executemany` extends them, one insert writes the rest. Raises what the database
    raises (`sqlalchemy.exc.DBAPIError`)."""
    if not rows:
        return
    folded: dict[tuple[Any, ...], dict[str, Any]] = {}
    counts: dict[tuple[Any, ...], int] = {}
    plain: list[dict[str, Any]] = []
    for row in rows:
        if row["run_id"] is None:
            plain.append(_new(row, 1))
            continue
        key = (row["app"], row["campaign_type"], row["run_id"], *(row[name] for name in SAME))
        folded.setdefault(key, row)
        counts[key] = counts.get(key, 0) + 1
    found = _matching(conn, list(folded.values())) if folded else {}
    extended = []
    for key, row in folded.items():
        match = found.get(key)
        if match is None:
            plain.append(_new(row, counts[key]))
        else:
            extended.append(
                {"match": match, "seen": row["created_at"], "run": row["run_id"], "n": counts[key]}
            )
    if extended:
        w = sync_warnings.c
        conn.execute(
            update(sync_warnings)
            .where(w.id == bindparam("match"))
            .values(
                last_seen_at=bindparam("seen"),
                last_run_id=bindparam("run"),
                times_seen=w.times_seen + bindparam("n"),
            ),
            extended,
        )
    insert_rows(conn, sync_warnings, plain)


def _new(row: dict[str, Any], times: int) -> dict[str, Any]:
    return {
        **row,
        "last_seen_at": row["created_at"],
        "last_run_id": row["run_id"],
        "times_seen": times,
    }


def _matching(conn: Connection, rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], int]:
    """The id of the newest stored row each of `rows` extends, by `record_warnings`' key:
    the rows of the same pair whose last pass is the rows' own or the pair's previous one."""
    w, r = sync_warnings.c, sync_runs.c
    passes = {(row["app"], row["campaign_type"], row["run_id"]) for row in rows}
    found: dict[tuple[Any, ...], int] = {}
    for app, campaign_type, run_id in passes:
        previous = (
            select(func.max(r.id))
            .where(r.app == app, r.campaign_type == campaign_type, r.id < run_id)
            .scalar_subquery()
        )
        tokens = {row["campaign_token"] for row in rows if row["run_id"] == run_id}
        named = [token for token in tokens if token is not None]
        by_token = [w.campaign_token.in_(named)] if named else []
        if None in tokens:
            by_token.append(w.campaign_token.is_(None))
        candidates = conn.execute(
            select(w.id, *(w[name] for name in SAME))
            .where(
                w.app == app,
                w.campaign_type == campaign_type,
                or_(w.last_run_id == run_id, w.last_run_id == previous),
                or_(*by_token),
            )
            .order_by(w.id)
        )
        for match_id, *same in candidates:  # the newest of equal rows wins
            found[(app, campaign_type, run_id, *same)] = match_id
    return found
