"""Applying a page's `PagePlan` to the database: campaign rows and their children,
warnings, versions, the seen-marking and the sweep cursor, set-based (a few statements per
page, not a round trip per row), in one transaction.

One bad campaign never costs its page: when the database refuses the page, its campaigns
are written one transaction each, the ones it still refuses are left out with a warning
(and fetched again next pass), and the rest of the page is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from campaign_sync.db.bulk import insert_rows, new_ids
from campaign_sync.db.history import append_versions, close_open_versions
from campaign_sync.db.models import (
    campaign_versions,
    campaigns,
    message_actions,
    messages,
    targeting,
    triggers,
)
from campaign_sync.db.session import database_problem, lock_timeout_value, wait_for_locks
from campaign_sync.db.sightings import mark_seen
from campaign_sync.db.state import save_cursor
from campaign_sync.db.tokens import by_tokens, token_parameters
from campaign_sync.db.warnings import record_warnings
from campaign_sync.domain import CampaignType, shown_token
from campaign_sync.outcome import RunCounts
from campaign_sync.plan import CampaignWrite, PagePlan, PageWarning, StoredCampaign
from campaign_sync.storable import FieldWarning, storable

log = logging.getLogger(__name__)

CHILD_TABLES = (messages, message_actions, triggers, targeting)

Guard = Callable[[Connection], None]  # runs first in every page transaction (the pass lock)


def stored_campaigns(
    conn: Connection, app: str, campaign_type: CampaignType, tokens: Iterable[str]
) -> dict[str, StoredCampaign]:
    """What the database holds for these tokens: token -> `StoredCampaign`."""
    statement = _stored_statement(conn.dialect.name)
    rows = conn.execute(statement, token_parameters(app, campaign_type, tokens))
    return {row[0]: StoredCampaign(*row[1:]) for row in rows}


@cache
def _stored_statement(dialect_name: str) -> Select[Any]:
    """`stored_campaigns`' query, built once per dialect (`db.tokens`)."""
    c = campaigns.c
    newest = (
        select(func.max(campaign_versions.c.version))
        .where(campaign_versions.c.campaign_id == c.id)
        .scalar_subquery()
    )
    columns = (
        c.campaign_token,
        c.id,
        c.list_hash,
        c.content_hash,
        c.detail_fetched_at,
        c.deleted_at,
        newest.label("version"),
    )
    return by_tokens(dialect_name, columns)


# SQLSTATE classes about a value (PostgreSQL, appendix A): 22 data exception, 23 integrity
# constraint violation, 54 program limit exceeded (an index row too large). Anything else
# (an undefined column, a lost connection, a full disk) is the database's, not a campaign's.
DATA_ERROR_CLASSES = ("22", "23", "54")


def refused_for_its_data(error: DBAPIError) -> bool:
    """The database refused the values it was given, not the statement or the session."""
    if error.connection_invalidated:
        return False
    sqlstate = getattr(error.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in DATA_ERROR_CLASSES
    return isinstance(error, IntegrityError | DataError)  # SQLite names no SQLSTATE


def write_page(
    engine: Engine, plan: PagePlan, guard: Guard | None = None, *, wait_for_locks: bool = False
) -> RunCounts:
    """Commit the plan; returns what changed. `wait_for_locks`: wait for another
    session's locks however long they are held (what Batch already took must be recorded:
    update-in-app), instead of the lock timeout of `_page_transaction`.

    Raises what the database raises when it is the database that fails (a lost
    connection, or the page's bookkeeping refused), and whatever `guard` raises.
    """
    bounded = not wait_for_locks
    try:
        with _page_transaction(engine, guard, bounded) as conn:
            return apply_plan(conn, plan)
    except DBAPIError as error:
        if not plan.writes or not refused_for_its_data(error):
            raise
        log.warning(
            "the database refused the page at offset %d (%s); writing its %d campaigns one by one",
            plan.load.offset,
            database_problem(error),
            len(plan.writes),
        )
    rejected: dict[str, str] = {}
    written_ids: dict[str, int] = {}
    for write in plan.writes:
        try:
            with _page_transaction(engine, guard, bounded) as conn:
                warning_rows, ids = _write_campaigns(conn, plan, [write])
                record_warnings(conn, warning_rows)
            written_ids |= ids
        except DBAPIError as error:
            if not refused_for_its_data(error):
                raise
            rejected[write.campaign_token] = database_problem(error)
    for token, why in rejected.items():
        log.warning("campaign %s left out: the database refused it (%s)", shown_token(token), why)
    written = plan.without(rejected)
    with _page_transaction(engine, guard, bounded) as conn:  # if this fails, it is refused
        _apply_bookkeeping(conn, written, [], written_ids)
    return written.counts()


@contextmanager
def _page_transaction(
    engine: Engine, guard: Guard | None, bounded: bool = True
) -> Iterator[Connection]:
    """A transaction for (part of) a page, `guard` run first. On PostgreSQL its commit
    does not wait for the WAL flush (`synchronous_commit = off`, this transaction only):
    a server crash may lose the last pages committed (within 3 x wal_writer_delay, 0.6 s
    by default), never part of one, and the cursor is saved with the page, so the next
    pass resumes before them and writes them again (docs/reliability.md). The flush
    cost 4.8 ms a page, 13% of an initial load (docs/performance.md). A lock waited for
    longer than `session.LOCK_TIMEOUT_SECONDS` (or the session's shorter one) raises
    `sqlalchemy.exc.OperationalError` (SQLSTATE 55P03): set here for this transaction
    too, as a connection's own setting may not reach the server connection PgBouncer
    lends in transaction pooling (`bounded` False: no lock or statement timeout, and the
    commit waits for the WAL flush, as what it records was taken by Batch). Both settings
    go in one statement, one round trip."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            if bounded:
                conn.exec_driver_sql(
                    "select set_config('synchronous_commit', 'off', true),"
                    f" set_config('lock_timeout', {lock_timeout_value()}, true)"
                )
            else:
                wait_for_locks(conn)
        if guard is not None:
            guard(conn)
        yield conn


def apply_plan(conn: Connection, plan: PagePlan) -> RunCounts:
    """Apply the whole plan inside the caller's transaction; returns what changed."""
    warning_rows, written_ids = _write_campaigns(conn, plan, plan.writes)
    _apply_bookkeeping(conn, plan, warning_rows, written_ids)
    return plan.counts()


def _write_campaigns(
    conn: Connection, plan: PagePlan, writes: list[CampaignWrite]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Insert or rewrite these campaigns with their children and versions; returns their
    `sync_warnings` rows, for the caller to write, and their keys by token."""
    load = plan.load
    new = [write for write in writes if write.campaign_id is None]
    changed = [write for write in writes if write.campaign_id is not None]
    ids: list[tuple[int, CampaignWrite]] = []
    if new:
        new_rows = [
            {
                "app": load.app,
                "campaign_type": load.campaign_type.value,
                "campaign_token": write.campaign_token,
                "first_seen_at": load.now,
                "last_seen_at": load.now,
                **write.values,
            }
            for write in new
        ]
        if conn.dialect.name == "postgresql":  # COPY (db.bulk), with keys drawn beforehand
            new_keys = new_ids(conn, campaigns, len(new))
            insert_rows(
                conn,
                campaigns,
                [
                    {"id": key, **row, **write.texts}  # the JSON as it was serialised once
                    for key, row, write in zip(new_keys, new_rows, new, strict=True)
                ],
            )
        else:
            inserted = conn.execute(
                insert(campaigns).returning(campaigns.c.id, sort_by_parameter_order=True), new_rows
            ).all()
            new_keys = [row[0] for row in inserted]
        ids += list(zip(new_keys, new, strict=True))
    if changed:
        # Before the content is rewritten: the closed versions keep it (db.history).
        close_open_versions(
            conn,
            [
                {**write.version, "campaign_id": write.campaign_id}
                for write in changed
                if write.version
            ],
        )
        changed_ids = [write.campaign_id for write in changed]
        for table in CHILD_TABLES:
            conn.execute(delete(table).where(table.c.campaign_id.in_(changed_ids)))
        columns = list(changed[0].values)
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == bindparam("b_id"))
            .values({key: bindparam(f"v_{key}") for key in columns}),
            [
                {"b_id": write.campaign_id} | {f"v_{key}": write.values[key] for key in columns}
                for write in changed
            ],
        )
        ids += [(write.campaign_id, write) for write in changed if write.campaign_id is not None]
    children: dict[Any, list[dict[str, Any]]] = {table: [] for table in CHILD_TABLES}
    versions: list[dict[str, Any]] = []
    rows_of_warnings: list[dict[str, Any]] = []
    for campaign_id, write in ids:
        rows = write.rows
        children[messages] += [{**m, "campaign_id": campaign_id} for m in rows.messages]
        children[message_actions] += [
            {**a, "campaign_id": campaign_id} for a in rows.message_actions
        ]
        if rows.trigger:
            children[triggers].append({**rows.trigger, "campaign_id": campaign_id})
        if rows.targeting:
            children[targeting].append({**rows.targeting, "campaign_id": campaign_id})
        if write.version is not None:
            versions.append({**write.version, "campaign_id": campaign_id})
        rows_of_warnings += [
            _warning_row(plan, PageWarning(write.campaign_token, campaign_id, warning))
            for warning in rows.warnings
        ]
    for table, child_rows in children.items():
        insert_rows(conn, table, child_rows)
    insert_rows(conn, campaign_versions, versions)
    return rows_of_warnings, {write.campaign_token: campaign_id for campaign_id, write in ids}


def _apply_bookkeeping(
    conn: Connection,
    plan: PagePlan,
    warnings: list[dict[str, Any]],
    written_ids: dict[str, int],
) -> None:
    """Everything but the campaigns' content: fresh marks, tombstones, the seen marks
    (`sightings.mark_seen`; `written_ids`: token -> key of the campaigns the page wrote),
    the page's warnings and the cursor."""
    load = plan.load
    now = load.now
    rows = warnings + [_warning_row(plan, warning) for warning in plan.warnings]
    if plan.refreshes:
        columns = [key for key in plan.refreshes[0] if key != "id"]
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == bindparam("b_id"))
            .values(
                {key: bindparam(f"v_{key}") for key in columns}
                | {"detail_fetched_at": now, "deleted_at": None}
            ),
            [
                {"b_id": refresh["id"]} | {f"v_{key}": refresh[key] for key in columns}
                for refresh in plan.refreshes
            ],
        )
    if plan.refetch:
        conn.execute(
            update(campaigns).where(campaigns.c.id.in_(plan.refetch)).values(detail_fetched_at=None)
        )
    if plan.tombstones:
        conn.execute(
            update(campaigns).where(campaigns.c.id.in_(plan.tombstones)).values(deleted_at=now)
        )
    append_versions(conn, plan.versions)
    if plan.seen and load.sweep_id is not None:
        mark_seen(
            conn,
            load.app,
            load.campaign_type,
            plan.seen,
            sweep_id=load.sweep_id,
            now=now,
            written=written_ids,  # last_seen_at set
        )
    record_warnings(conn, rows)
    if load.position is not None:
        save_cursor(
            conn,
            load.app,
            load.campaign_type,
            load.position,
            now,
            unidentified_entries=len(load.unidentified),
        )


def warning_row(
    warning: FieldWarning,
    *,
    run_id: int | None,
    app: str,
    campaign_type: CampaignType,
    campaign_token: str | None,
    campaign_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    """A `sync_warnings` row; its texts pass `storable()`, since a warning's raw value is
    by nature what the database may refuse."""
    texts, _ = storable(
        {
            "campaign_token": campaign_token,
            "field": warning.field,
            "raw_value": warning.raw_value,
            "message": warning.message,
        }
    )
    return {
        **texts,
        "run_id": run_id,
        "campaign_id": campaign_id,
        "app": app,
        "campaign_type": campaign_type.value,
        "created_at": now,
    }


def _warning_row(plan: PagePlan, warning: PageWarning) -> dict[str, Any]:
    load = plan.load
    return warning_row(
        warning.warning,
        run_id=load.run_id,
        app=load.app,
        campaign_type=load.campaign_type,
        campaign_token=warning.campaign_token,
        campaign_id=warning.campaign_id,
        now=load.now,
    )
