"""Which revision a database's schema is at, told without Alembic (so that `sync` and
`status` start fast): the recorded revision read with one query, the newest one known,
and the signatures that recognise an unrecorded schema. `db.migrate` moves schemas."""

from __future__ import annotations

import re

from sqlalchemy import Engine, inspect, text


class SchemaNotCurrent(Exception):
    """The database lacks the newest schema; `campaign-sync migrate` fixes it."""


class SchemaNotUsable(SchemaNotCurrent):
    """The PostgreSQL schema exists, but the role may not use it (no USAGE privilege), so
    its tables look absent: a grant fixes it, not `migrate` (which fails on it)."""


class UnrecordedSchema(SchemaNotCurrent):
    """Our tables are there but `alembic_version` is not (a restored dump, a table dropped by
    hand): `campaign-sync migrate --adopt` recognises the revision and records it."""


# What each revision added that the one before lacked, newest first: how `adopt` tells
# which revision a schema without `alembic_version` is at. A test checks every revision
# has its line. (table or view, column or None for the table itself)
SIGNATURES: tuple[tuple[str, tuple[str, str | None]], ...] = (
    ("0014", ("sync_warnings", "times_seen")),
    ("0013", ("v_campaign_versions", "live_as_sent")),
    ("0012", ("v_push_performance_total", "sent_optins_a")),
    ("0011", ("v_campaign_versions", "content_hash")),
    ("0010", ("v_campaign_versions", "detail")),
    ("0009", ("api_pacing", None)),
    ("0008", ("campaign_sightings", None)),
    ("0007", ("campaign_versions", "valid_from")),
    ("0006", ("sync_state", "lock_holder")),
    ("0005", ("campaign_stats_daily", None)),
    ("0004", ("sync_state", "sweep_unidentified_entries")),
    ("0003", ("campaign_versions", None)),
    ("0002", ("sync_state", "next_pass_at")),
    ("0001", ("campaigns", None)),
)


HEAD_REVISION = SIGNATURES[0][0]  # the newest revision (a test checks it is Alembic's head)
KNOWN_REVISIONS = frozenset(revision for revision, _ in SIGNATURES)


class ForeignSchema(SchemaNotCurrent):
    """Tables named like ours that campaign-sync did not create (another tool's
    `campaigns`), or only some of ours: neither migrating over them nor `--adopt` can
    work, and recording a revision for them would leave the database stuck."""


# Revision 0001's tables, each with columns every revision since has kept: what any
# schema of ours holds. A table of one of these names without its columns is another's.
BASELINE: dict[str, tuple[str, ...]] = {
    "campaigns": ("id", "app", "campaign_type", "campaign_token", "detail", "content_hash"),
    "messages": ("campaign_id", "position", "language"),
    "message_actions": ("campaign_id", "message_position", "position"),
    "triggers": ("campaign_id", "trigger_when", "event"),
    "targeting": ("campaign_id", "segments", "query"),
    "sync_state": ("app", "campaign_type", "sweep_id", "sweep_offset"),
    "sync_runs": ("id", "app", "campaign_type", "status"),
    "sync_warnings": ("id", "run_id", "campaign_id"),
    "campaign_updates": ("id", "attempted_at", "app"),
}
# Every table and view any revision of ours creates (a test checks it against the head's):
# one of these names in a database means our tables, or another's in their place.
OUR_NAMES = frozenset(BASELINE) | {
    "campaign_versions", "campaign_stats_daily", "campaign_stats_fetches",
    "campaign_sightings", "api_pacing", "v_campaigns", "v_messages", "v_campaign_segments",
    "v_campaign_labels", "v_campaign_versions", "v_campaign_changes", "v_push_performance",
    "v_push_performance_total",
}  # fmt: skip


def _foreign(what: str) -> ForeignSchema:
    return ForeignSchema(
        f"the database holds {what}: neither migrate nor migrate --adopt can use it; use an "
        "empty database, or on PostgreSQL another schema (CAMPAIGN_SYNC_DB_SCHEMA)"
    )


def recognise(engine: Engine) -> str | None:
    """The revision our tables match when `alembic_version` is missing; None: no table or
    view of ours. Raises `ForeignSchema` when a name of ours is there without our tables
    (a table of our name lacking our columns, 0001's tables missing), or when a revision's
    tables are there without all those of the revisions before it."""
    found = inspect(engine)
    tables = set(found.get_table_names()) | set(found.get_view_names())
    present = sorted(OUR_NAMES & tables)
    if not present:
        return None
    baseline = [name for name in BASELINE if name in tables]
    foreign = [
        name
        for name in baseline
        if not set(BASELINE[name]) <= {c["name"] for c in found.get_columns(name)}
    ]
    if not baseline or foreign:
        raise _foreign(f"tables campaign-sync did not create ({', '.join(foreign or present)})")

    def has(table: str, column: str | None) -> bool:
        return table in tables and (
            column is None or column in {c["name"] for c in found.get_columns(table)}
        )

    missing = [name for name in BASELINE if name not in tables]
    matched = next(
        (index for index, (_, (table, column)) in enumerate(SIGNATURES) if has(table, column)),
        None,
    )
    revision = None if matched is None else SIGNATURES[matched][0]
    if matched is not None:
        missing += [
            f"{table}.{column}" if column else table
            for _, (table, column) in SIGNATURES[matched + 1 :]
            if not has(table, column)
        ]
    if missing:
        shown = ", ".join(dict.fromkeys(missing))
        raise _foreign(f"only some of campaign-sync's tables (missing: {shown})")
    return revision


def unrecorded_schema(engine: Engine) -> str | None:
    """The revision of our tables when they exist without `alembic_version`, else None."""
    if stored_revision(engine) is not None:
        return None
    try:
        found = recognise(engine)
    except ForeignSchema:
        if _still_unrecorded(engine):
            raise
        return None
    return found if found is not None and _still_unrecorded(engine) else None


def _still_unrecorded(engine: Engine) -> bool:
    """Whether `alembic_version` still records nothing, read again after the tables were
    found. Another replica's migration commits its tables and their revision together, so
    tables it committed between the first read and `recognise` come with a revision now:
    they were being migrated, not left unrecorded, nor another's. (Two replicas migrating
    through PgBouncer: the second read no revision, then found the first one's tables, and
    stopped with 'run migrate --adopt', seen once in CI; or, when `recognise` read them
    midway, with 'the database holds tables campaign-sync did not create', exit 2, seen
    twice on 2026-11-30.)"""
    return stored_revision(engine) is None


def stored_revision(engine: Engine) -> str | None:
    """The revision `alembic_version` records; None when there is none."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        found = conn.execute(text("select version_num from alembic_version")).scalar()
        return str(found) if found is not None else None


def unknown_revision(revision: str) -> str:
    """The message for a revision this campaign-sync does not know: a newer one's (ours
    are numbered 0001, 0002...), or another Alembic-managed application's."""
    if not re.fullmatch(r"[0-9]{4}", revision):
        return (
            f"the database's alembic_version records revision {revision!r}, which is not "
            "campaign-sync's (another application managed by Alembic uses this database): "
            "use an empty database, or on PostgreSQL another schema (CAMPAIGN_SYNC_DB_SCHEMA)"
        )
    return (
        f"the database is at revision {revision}, which this campaign-sync does not know "
        "(a newer version migrated it): run that version, or this one on another database"
    )


def revision_problem(current: str) -> str | None:
    """Why a database whose `alembic_version` records `current` is not this version's:
    a revision it does not know (`unknown_revision`), or an older one; None at the newest.
    Said by a refused start (`ensure_current`) and by a pass whose schema changed under
    it (`locks.Lease.renew`)."""
    if current not in KNOWN_REVISIONS:
        return unknown_revision(current)
    if current != HEAD_REVISION:
        return (
            f"the database is at revision {current}, the newest is {HEAD_REVISION}: run "
            "campaign-sync migrate"
        )
    return None


def schema_not_usable(engine: Engine) -> str | None:
    """Why the role may not use the schema its connections look in first (PostgreSQL, the
    first of `search_path`: CAMPAIGN_SYNC_DB_SCHEMA's), or None. Without USAGE on it its
    tables are invisible, and "the database has no campaign-sync schema: run migrate" sent
    the operator to a migrate that then failed with "permission denied for schema" (a
    newcomer's find)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        path = conn.execute(text("show search_path")).scalar() or ""
        first = path.split(",")[0].strip().strip('"')
        if not first or first == "$user":
            return None
        found = conn.execute(
            text(
                "select has_schema_privilege(oid, 'USAGE'), current_user from pg_namespace "
                "where nspname = :name"
            ),
            {"name": first},
        ).first()
    if found is None or found[0]:
        return None
    role = found[1]
    return (
        f"the role {role} may not use the schema {first} (no USAGE privilege), so its tables "
        f'look absent: GRANT USAGE ON SCHEMA {first} TO "{role}" (and the privileges on its '
        "tables and sequences)"
    )


def ensure_current(engine: Engine) -> None:
    """Raises `SchemaNotCurrent` (`UnrecordedSchema` for tables without a revision) unless
    the database is at the newest revision."""
    current = stored_revision(engine)
    head = HEAD_REVISION
    if current is None and (found := recognise(engine)) is not None:
        current = stored_revision(engine)  # read again: see `_still_unrecorded`
        if current is None:
            raise UnrecordedSchema(
                f"the database has campaign-sync tables (they match revision {found}) but "
                "no record of their revision (alembic_version): run campaign-sync migrate "
                "--adopt"
            )
    if current is not None:
        problem = revision_problem(current)
        if problem is not None:
            raise SchemaNotCurrent(problem)
        return
    if (refused := schema_not_usable(engine)) is not None:
        raise SchemaNotUsable(refused)
    raise SchemaNotCurrent(
        f"the database has no campaign-sync schema, the newest is {head}: run campaign-sync migrate"
    )
