"""The one place where PostgreSQL and SQLite differ: JSON storage, time zones and the
spelling of an upsert."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import JSON, DateTime, Dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.types import TypeDecorator, TypeEngine

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert
    from sqlalchemy.sql.schema import Table

# jsonb on PostgreSQL, JSON text on SQLite; Python None is SQL NULL, not JSON null.
JSONDocument: TypeEngine[Any] = JSON(none_as_null=True).with_variant(
    JSONB(none_as_null=True), "postgresql"
)


class UTCDateTime(TypeDecorator[datetime]):
    """timestamptz on PostgreSQL; on SQLite (no time zones) stored as UTC and read back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing a naive datetime for a UTC column: {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def upsert_insert(dialect_name: str, table: Table) -> Insert:
    """`INSERT` into `table` with `ON CONFLICT` clauses, in the dialect's spelling:
    PostgreSQL's `insert` for "postgresql", SQLite's for anything else (the two share the
    `on_conflict_do_update` / `on_conflict_do_nothing` / `excluded` interface). The one
    place that picks it (the lease's first row, the seen marks, push stats)."""
    if dialect_name == "postgresql":
        return postgresql_insert(table)
    return cast("Insert", sqlite_insert(table))
