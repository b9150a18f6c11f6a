"""Running the Alembic revisions shipped in the package, and checking a database is current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    Connection,
    Constraint,
    Engine,
    Index,
    Table,
    bindparam,
    inspect,
    text,
)

import campaign_sync.migrations
from campaign_sync.db.models import metadata
from campaign_sync.db.revisions import (
    HEAD_REVISION,
    KNOWN_REVISIONS,
    SIGNATURES,
    ForeignSchema,
    SchemaNotCurrent,
    SchemaNotUsable,
    UnrecordedSchema,
    ensure_current,
    recognise,
    stored_revision,
    unknown_revision,
    unrecorded_schema,
)
from campaign_sync.db.session import create_schema, make_engine, take_migration_turn
from campaign_sync.db.views import DESCRIBED_VIEWS, comment_views, create_views


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
    does not know (a newer campaign-sync migrated the database), `UnrecordedSchema` for
    our tables without their revision record, `ForeignSchema` for another's tables."""
    create_schema(database_url, schema)
    current = current_revision(database_url, schema)
    if current is not None and current not in KNOWN_REVISIONS:
        raise SchemaNotCurrent(unknown_revision(current))
    if current is None:  # tables of ours without their record, or another's in their place
        engine = make_engine(database_url, schema=schema)
        try:
            unrecorded = unrecorded_schema(engine)  # raises ForeignSchema
        finally:
            engine.dispose()
        if unrecorded is not None:
            raise UnrecordedSchema(
                f"the database has campaign-sync tables (they match revision {unrecorded}) "
                "but no record of their revision (alembic_version): run campaign-sync "
                "migrate --adopt"
            )
    config = alembic_config(database_url, schema)
    command.upgrade(config, revision)
    return config.attributes.get("found_revision", current)


def missing_objects(engine: Engine) -> tuple[list[str], list[str]]:
    """Our tables and our views the newest revision has that the database lacks (dropped
    by hand, or a partial restore), each as what it should be: a view standing where our
    table should be is no table, and a table, a materialized view or anything else where
    our view should be is no view (`misplaced_problem` names them). (tables, views), each
    in creation order."""
    found = inspect(engine)
    tables_there = set(found.get_table_names())
    views_there = set(found.get_view_names())
    tables = [name for name in metadata.tables if name not in tables_there]
    views = [view.name for view in DESCRIBED_VIEWS if view.name not in views_there]
    return tables, views


def misplaced_problem(engine: Engine, tables: list[str], views: list[str]) -> str | None:
    """What `check` and `migrate` say when a name of ours is held by another kind of object
    (an analyst's table or materialized view named v_campaigns after ours was dropped; a
    sequence, an index or a type, which PostgreSQL names in the same space); None if none
    is. `tables`, `views`: what `missing_objects` found missing. An object of the right
    kind made since (another migrate remaking our views) holds nothing."""
    held_tables = sorted(names_taken(engine, tables, own="table"), key=tables.index)
    held_views = sorted(names_taken(engine, views, own="view"), key=views.index)
    said = []
    if held_tables:
        said.append(
            f"{', '.join(held_tables)}: another object (a view, an index, a sequence, a "
            "type) holds the name of campaign-sync's table: rename or drop it, then restore "
            "the table from a backup (or migrate a new database and sync it afresh)"
        )
    if held_views:
        said.append(
            f"{', '.join(held_views)}: another object (a table, a materialized view, an "
            "index, a sequence, a type) holds the name of campaign-sync's view: rename or "
            "drop it, then run campaign-sync migrate, which makes missing views again"
        )
    return "; ".join(said) or None


# PostgreSQL's relkind and SQLite's type of each kind of object of ours.
_KINDS = {"table": ("r", "table"), "view": ("v", "view")}


def names_taken(engine: Engine, names: list[str], *, own: str) -> set[str]:
    """Which of `names` an object other than a `own` ("table" or "view") holds in our
    schema: PostgreSQL's relations (tables, views, materialized views, indexes,
    sequences, composite types) and types of their own (enums, domains), SQLite's
    sqlite_master entries but triggers (a space of their own)."""
    if not names:
        return set()
    relkind, sqlite_type = _KINDS[own]
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            found = conn.execute(
                text(
                    "select c.relname from pg_class c join pg_namespace n"
                    " on n.oid = c.relnamespace where n.nspname = current_schema()"
                    " and c.relname = any(:names) and c.relkind <> :relkind"
                    " union select t.typname from pg_type t join pg_namespace n"
                    " on n.oid = t.typnamespace where n.nspname = current_schema()"
                    " and t.typname = any(:names) and t.typrelid = 0"
                ),
                {"names": names, "relkind": relkind},
            )
        else:
            found = conn.execute(
                text(
                    "select name from sqlite_master where type not in ('trigger', :kind)"
                    " and name in :names"
                ).bindparams(bindparam("names", expanding=True)),
                {"names": names, "kind": sqlite_type},
            )
        return {str(name) for name in found.scalars()}


def missing_views_in(conn: Connection) -> list[str]:
    """Our views missing, as seen inside `conn`'s transaction (after its turn is ours)."""
    there = set(inspect(conn).get_view_names())
    return [view.name for view in DESCRIBED_VIEWS if view.name not in there]


def missing_tables_problem(tables: list[str]) -> str:
    """What `check` and `migrate` say of tables of ours missing at the newest revision."""
    return (
        f"the schema is recorded as the newest but lacks the table(s) {', '.join(tables)}: "
        "restore them from a backup, or migrate a new database and sync it afresh"
    )


def restore_views(database_url: str, schema: str | None = None) -> list[str]:
    """At the newest revision, make again, with their descriptions, the views of ours the
    database lacks: they hold no data, and a view dropped by hand stayed missing while
    `migrate` said the schema was current. Returns their names (creation order). Raises
    `SchemaNotCurrent` when one of our tables is missing (the views would fail on it)."""
    engine = make_engine(database_url, schema=schema)
    try:
        tables, missing = missing_objects(engine)
        misplaced = misplaced_problem(engine, tables, missing)
        if misplaced is not None:
            raise SchemaNotCurrent(misplaced)
        if tables:
            raise SchemaNotCurrent(missing_tables_problem(tables))
        if not missing:
            return []
        with engine.begin() as conn:
            # Replicas making views again at once take turns, as migrating (two CREATE OR
            # REPLACE VIEW of one name at once collide on PostgreSQL's catalog).
            take_migration_turn(conn)
            missing = [name for name in missing if name in missing_views_in(conn)]
            remade = tuple(view for view in DESCRIBED_VIEWS if view.name in missing)
            create_views(conn, remade, if_missing=True)
            comment_views(conn, remade)
        return missing
    finally:
        engine.dispose()


def downgrade(database_url: str, revision: str, *, schema: str | None = None) -> None:
    command.downgrade(alembic_config(database_url, schema), revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config(""))
    return str(script.get_current_head())


def current_revision(
    database_url: str, schema: str | None = None, *, lock_timeout: bool = False
) -> str | None:
    """The database's Alembic revision; None when it has none (an empty database).
    `lock_timeout`: wait a bounded time for another session's lock (`make_engine`)."""
    engine = make_engine(database_url, schema=schema, lock_timeout=lock_timeout)
    try:
        return stored_revision(engine)
    finally:
        engine.dispose()


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

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    if differences:
        raise UnrecordedSchema(
            f"the tables look like revision {revision} but differ from it "
            f"({len(differences)} difference(s), first: {_difference(differences[0])}); "
            "adopting them "
            "would hide that: restore a complete dump, or start from an empty database"
        )


def _difference(found: Any) -> str:
    """One of Alembic's `compare_metadata` differences in a few words ("add_table
    campaign_stats_daily", "add_column campaigns.theme"): its repr holds whole Table
    objects, kilobytes of them."""
    if isinstance(found, list) and found:
        found = found[0]
    if not isinstance(found, tuple) or not found:
        return str(found)[:200]
    words = [str(found[0])]
    for part in found[1:]:
        if isinstance(part, Table):
            words.append(part.name)
        elif isinstance(part, Column):
            words.append(f"{part.table.name}.{part.name}" if part.table is not None else part.name)
        elif isinstance(part, Index | Constraint):
            words.append(str(part.name))
        elif isinstance(part, str):
            words.append(part)
    return " ".join(words)[:200]


__all__ = [
    "HEAD_REVISION",
    "KNOWN_REVISIONS",
    "SIGNATURES",
    "ForeignSchema",
    "SchemaNotCurrent",
    "SchemaNotUsable",
    "UnrecordedSchema",
    "adopt",
    "current_revision",
    "downgrade",
    "ensure_current",
    "head_revision",
    "recognise",
    "unrecorded_schema",
    "upgrade",
]
