"""Running the Alembic revisions shipped in the package, and checking a database is current."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import campaign_sync.migrations
from campaign_sync.db.session import make_engine


class SchemaNotCurrent(Exception):
    """The database lacks the newest schema; `campaign-sync migrate` fixes it."""


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(campaign_sync.migrations.__file__).parent))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config(""))
    return str(script.get_current_head())


def current_revision(database_url: str) -> str | None:
    """The database's Alembic revision; None when it has none (an empty database)."""
    engine = make_engine(database_url)
    try:
        return _revision(engine)
    finally:
        engine.dispose()


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_current(engine: Engine) -> None:
    current = _revision(engine)
    head = head_revision()
    if current != head:
        state = "has no campaign-sync schema" if current is None else f"is at revision {current}"
        raise SchemaNotCurrent(
            f"the database {state}, the newest is {head}: run campaign-sync migrate"
        )
