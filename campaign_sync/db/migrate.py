"""Running the Alembic revisions shipped in the package, and checking a database is current."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

import campaign_sync.migrations
from campaign_sync.db.session import create_schema, make_engine


class SchemaNotCurrent(Exception):
    """The database lacks the newest schema; `campaign-sync migrate` fixes it."""


class UnrecordedSchema(SchemaNotCurrent):
    """Our tables are there but `alembic_version` is not (a restored dump, a table dropped by
    hand): `campaign-sync migrate --adopt` recognises the revision and records it."""


# What each revision added that the one before lacked, newest first: how `adopt` tells
# which revision a schema without `alembic_version` is at. A test checks every revision
# has its line. (table, column or None for the table itself)
SIGNATURES: tuple[tuple[str, tuple[str, str | None]], ...] = (
    ("0007", ("campaign_versions", "valid_from")),
    ("0006", ("sync_state", "lock_holder")),
    ("0005", ("campaign_stats_daily", None)),
    ("0004", ("sync_state", "sweep_unidentified_entries")),
    ("0003", ("campaign_versions", None)),
    ("0002", ("sync_state", "next_pass_at")),
    ("0001", ("campaigns", None)),
)


def alembic_config(database_url: str, schema: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(campaign_sync.migrations.__file__).parent))
    config.attributes["database_url"] = database_url
    config.attributes["db_schema"] = schema
    return config


def upgrade(database_url: str, revision: str = "head", *, schema: str | None = None) -> str | None:
    """Migrate up; on PostgreSQL inside `schema` (created when missing), default public.
    Returns the revision the database was at when this upgrade began (after waiting its
    turn behind another replica's). Raises `SchemaNotCurrent` for a revision this version
    does not know (a newer campaign-sync migrated the database)."""
    create_schema(database_url, schema)
    current = current_revision(database_url, schema)
    if current is not None and current not in KNOWN_REVISIONS:
        raise SchemaNotCurrent(_unknown(current))
    config = alembic_config(database_url, schema)
    command.upgrade(config, revision)
    return config.attributes.get("found_revision", current)


def _unknown(revision: str) -> str:
    return (
        f"the database is at revision {revision}, which this campaign-sync does not know "
        "(a newer version migrated it): run that version, or this one on another database"
    )


def downgrade(database_url: str, revision: str, *, schema: str | None = None) -> None:
    command.downgrade(alembic_config(database_url, schema), revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config(""))
    return str(script.get_current_head())


def current_revision(database_url: str, schema: str | None = None) -> str | None:
    """The database's Alembic revision; None when it has none (an empty database)."""
    engine = make_engine(database_url, schema=schema)
    try:
        return _revision(engine)
    finally:
        engine.dispose()


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


KNOWN_REVISIONS = frozenset(revision for revision, _ in SIGNATURES)


def recognise(engine: Engine) -> str | None:
    """The revision our tables match when `alembic_version` is missing; None: no tables."""
    found = inspect(engine)
    tables = set(found.get_table_names())
    for revision, (table, column) in SIGNATURES:
        if table in tables and (
            column is None or column in {c["name"] for c in found.get_columns(table)}
        ):
            return revision
    return None


def unrecorded_schema(engine: Engine) -> str | None:
    """The revision of our tables when they exist without `alembic_version`, else None."""
    return recognise(engine) if _revision(engine) is None else None


def adopt(database_url: str, schema: str | None = None) -> str | None:
    """Record the revision our tables match (`alembic stamp`); returns it, or None when the
    database already records one or holds no table of ours."""
    engine = make_engine(database_url, schema=schema)
    try:
        revision = unrecorded_schema(engine)
        if revision == head_revision():  # the newest: the tables can be checked whole
            _refuse_differences(engine, revision)
    finally:
        engine.dispose()
    if revision is not None:
        command.stamp(alembic_config(database_url, schema), revision)
    return revision


def _refuse_differences(engine: Engine, revision: str) -> None:
    from alembic.autogenerate import compare_metadata

    from campaign_sync.db.models import Base

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    if differences:
        raise UnrecordedSchema(
            f"the tables look like revision {revision} but differ from it "
            f"({len(differences)} difference(s), first: {differences[0]!r}); adopting them "
            "would hide that: restore a complete dump, or start from an empty database"
        )


def ensure_current(engine: Engine) -> None:
    """Raises `SchemaNotCurrent` (`UnrecordedSchema` for tables without a revision) unless
    the database is at the newest revision."""
    current = _revision(engine)
    head = head_revision()
    if current is None and (found := recognise(engine)) is not None:
        raise UnrecordedSchema(
            f"the database has campaign-sync tables (they match revision {found}) but no "
            "record of their revision (alembic_version): run campaign-sync migrate --adopt"
        )
    if current is not None and current not in KNOWN_REVISIONS:
        raise SchemaNotCurrent(_unknown(current))
    if current != head:
        state = "has no campaign-sync schema" if current is None else f"is at revision {current}"
        raise SchemaNotCurrent(
            f"the database {state}, the newest is {head}: run campaign-sync migrate"
        )
