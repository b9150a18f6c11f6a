"""Alembic environment: the URL comes from the caller's config or from DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from campaign_sync.config import DEFAULT_DATABASE_URL, DEFAULT_DB_SCHEMA
from campaign_sync.db.models import metadata
from campaign_sync.db.session import create_schema, make_engine, take_migration_turn

config = context.config
target_metadata = metadata


def _url() -> str:
    return config.attributes.get("database_url") or os.environ.get(
        "DATABASE_URL", DEFAULT_DATABASE_URL
    )


def _schema() -> str:
    """CAMPAIGN_SYNC_DB_SCHEMA (PostgreSQL): where the tables, views and alembic_version live."""
    return config.attributes.get("db_schema") or os.environ.get(
        "CAMPAIGN_SYNC_DB_SCHEMA", DEFAULT_DB_SCHEMA
    )


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
        version_table_schema=_schema() if connection.dialect.name == "postgresql" else None,
        # SQLite's DDL is transactional, but Alembic takes it as not (a commit per
        # revision) and Python's sqlite3 begins no transaction before DDL: each CREATE
        # committed alone, so a command started meanwhile found tables without their
        # revision and said "run migrate --adopt". One transaction, begun below.
        transactional_ddl=True if sqlite else None,
    )
    with context.begin_transaction():
        if sqlite and not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            # IMMEDIATE: SQLite's write lock now, so migrators take turns (the next waits
            # for this commit, the connection's 60 s busy timeout) and read the revision
            # after it, as PostgreSQL's advisory lock below makes them.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        # Replicas migrating at once take turns (PostgreSQL: an advisory lock for this
        # transaction), and the revision is read after the turn is ours, so the second
        # one finds nothing left to do (`session.take_migration_turn`).
        take_migration_turn(connection)
        # What the revision was once the lock is ours: what `migrate` reports it moved from.
        config.attributes["found_revision"] = context.get_context().get_current_revision()
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    create_schema(_url(), _schema())
    engine = make_engine(_url(), schema=_schema())
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
