"""Writing `sync_warnings`: one row for a problem, however many passes warn of it.

A warning of a pass identical to one a pass stored since revision 0014 for the same app
and type (same campaign token, campaign, field and raw value) extends the newest such row
(rows from before 0014 are left as they are): `times_seen` grows,
`last_seen_at`, `last_run_id` and `message` (the latest wording: it may name an offset, a
count of attempts, a time) move; `created_at` and `run_id` keep when and by which pass it
was first seen. Anything else is a row of its own, and so is each warning of a
write-back (no run).

Why: what stays wrong in Batch's list itself (an entry that is no campaign, a token no
request can carry, a listed campaign whose detail answers 404 or keeps failing) was warned
again at every pass, a row each time: 288 rows a day for one such entry at a pass every 5
minutes, for ever. Any earlier row counts, not only the previous pass's: push statistics
are asked once an hour while passes run every 5 minutes, and a pass that failed or
stopped before a page would otherwise start its problems' rows again (a review's finds).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    Select,
    Text,
    bindparam,
    func,
    select,
    text,
    true,
    update,
)

from campaign_sync.db.bulk import insert_rows
from campaign_sync.db.models import sync_warnings

# PostgreSQL's JIT compiler off for the rest of the transaction (a page's, or push
# stats'): before `sync_warnings` is first analysed the planner costs each token's probe
# at ~8,000, so a page's 100 probes pass `jit_above_cost` and compiling took 88 ms of a
# 89 ms lookup (EXPLAIN ANALYZE, 900,000 rows from before revision 0014). `jit` exists
# from PostgreSQL 11; on an older server the statement sets nothing.
NO_JIT = text(
    "select set_config('jit', 'off', true)"
    " from (select current_setting('jit', true) as jit) as found where found.jit is not null"
)

# What makes two warnings of one app and type the same problem.
SAME = ("campaign_token", "campaign_id", "field", "raw_value")


def record_warnings(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write warning rows (`loader.warning_row`'s dicts) in `conn`'s transaction: a pass's
    warning extends the newest row with the same key a pass recorded (`_stored`), or is
    inserted (`times_seen`
    the number of identical ones given); a write-back's (`run_id` None) is inserted.

    One query reads the stored rows of the warnings' tokens (through an index: it costs
    what they hold, not what the table holds), one more those of warnings with no token
    when there are any, one `executemany` extends, one insert writes the rest. Raises what
    the database raises (`sqlalchemy.exc.DBAPIError`)."""
    if not rows:
        return
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    counts: dict[tuple[Any, ...], int] = {}
    plain: list[dict[str, Any]] = []
    for row in rows:
        if row["run_id"] is None:
            plain.append(_new(row, 1))
            continue
        key = _key(row)
        latest[key] = row  # the last wording of the batch is the one kept
        counts[key] = counts.get(key, 0) + 1
    found = _stored(conn, list(latest.values())) if latest else {}
    extended = []
    for key, row in latest.items():
        match = found.get(key)
        if match is None:
            plain.append(_new(row, counts[key]))
        else:
            extended.append(
                {
                    "match": match,
                    "seen": row["created_at"],
                    "run": row["run_id"],
                    "said": row["message"],
                    "n": counts[key],
                }
            )
    if extended:
        w = sync_warnings.c
        conn.execute(
            update(sync_warnings)
            .where(w.id == bindparam("match"))
            .values(
                last_seen_at=bindparam("seen"),
                last_run_id=bindparam("run"),
                message=bindparam("said"),
                times_seen=w.times_seen + bindparam("n"),
            ),
            extended,
        )
    insert_rows(conn, sync_warnings, plain)


def _key(row: Any) -> tuple[Any, ...]:
    return (row["app"], row["campaign_type"], *(row[name] for name in SAME))


def _new(row: dict[str, Any], times: int) -> dict[str, Any]:
    return {
        **row,
        "last_seen_at": row["created_at"],
        "last_run_id": row["run_id"],
        "times_seen": times,
    }


def _stored(conn: Connection, rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], int]:
    """The id of the newest row a pass recorded since revision 0014 with each of `rows`'
    keys (`_key`), where any: by token (`_by_tokens`), or for warnings with no token (list
    entries that are no campaign) by raw value, each through a partial index over those
    rows only (`db.models.FOLDED`). Rows from before 0014 (the duplicates this module
    ends, millions in an old database) and write-backs' are never read."""
    w = sync_warnings.c
    columns = (w.id, w.app, w.campaign_type, *(w[name] for name in SAME))
    found: dict[tuple[Any, ...], int] = {}
    for app, campaign_type in {(row["app"], row["campaign_type"]) for row in rows}:
        mine = [row for row in rows if (row["app"], row["campaign_type"]) == (app, campaign_type)]
        named = sorted({row["campaign_token"] for row in mine if row["campaign_token"] is not None})
        # A hash index holds no NULL: a warning with neither token nor value (none is made:
        # a `null` list entry's value is the text "null") is not looked up but inserted, as
        # looking it up read the whole table (a review's find).
        unnamed = sorted(
            {row["raw_value"] for row in mine if row["campaign_token"] is None} - {None}
        )
        stored: list[Any] = []
        if named and conn.dialect.name == "postgresql":
            conn.execute(NO_JIT)
        if named:
            stored += conn.execute(
                _by_tokens(conn.dialect.name),
                {"app": app, "campaign_type": campaign_type, "tokens": named},
            ).all()
        if unnamed:
            stored += conn.execute(
                select(*columns).where(
                    w.app == app,
                    w.campaign_type == campaign_type,
                    w.campaign_token.is_(None),
                    w.last_run_id.is_not(None),  # FOLDED: the partial index's rows
                    w.raw_value.in_(unnamed),
                )
            ).all()
        for row in sorted(stored, key=lambda row: row.id):  # the newest of equal rows wins
            found[_key(row._mapping)] = row.id
    return found


@functools.cache
def _by_tokens(dialect_name: str) -> Select[Any]:
    """The warnings a pass recorded since revision 0014 of an app (`app`), type
    (`campaign_type`) and tokens (`tokens`).

    On PostgreSQL one probe of the index per token (a LATERAL subquery, kept from being
    flattened by OFFSET 0): `campaign_token IN (...)` for a page's 100 tokens read the
    whole table before it was first analysed, more at every page (EXPLAIN ANALYZE at
    50,000 rows: a sequential scan, 11 ms; probed, 0.9 ms). As `db.tokens` does for
    campaigns. SQLite probes the index for an IN list by itself."""
    w = sync_warnings.c
    columns = (w.id, w.app, w.campaign_type, *(w[name] for name in SAME))
    pair = (
        w.app == bindparam("app", type_=Text),
        w.campaign_type == bindparam("campaign_type"),
        w.last_run_id.is_not(None),  # FOLDED: the partial index's rows
    )
    if dialect_name != "postgresql":
        tokens = bindparam("tokens", expanding=True, type_=Text)
        return select(*columns).where(*pair, w.campaign_token.in_(tokens))
    wanted = (
        func.unnest(bindparam("tokens", type_=ARRAY(Text)))
        .table_valued("token")
        .render_derived(name="wanted")
    )
    probe = select(*columns).where(*pair, w.campaign_token == wanted.c.token).offset(0).lateral()
    return select(probe).select_from(wanted).join(probe, true())
