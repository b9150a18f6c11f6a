"""Inserting a page's rows into one table at once: PostgreSQL's COPY, else one INSERT
executed for every row (SQLite).

Why COPY: SQLAlchemy sends many rows as one long multi-row INSERT, which psycopg parses
anew for each page (too long for its statement cache, and prepared statements are off
for PgBouncer's transaction pooling, `db.session`); COPY has no statement to parse, and
PostgreSQL reads its rows faster than an INSERT's (docs/performance.md). The
values pass through the columns' own bind processing (UTC times, JSON), so the rows
stored are the ones an INSERT would have stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Column, Connection, Table, insert, text
from sqlalchemy.exc import DBAPIError

from campaign_sync.storable import JSONText


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (dicts by column name, all with the keys of the first) into `table`.
    A `JSONText` value of a JSON column is stored as the text it is (PostgreSQL); on
    SQLite, rows hold documents.

    Raises `sqlalchemy.exc.DBAPIError` (its subclass for the SQLSTATE: IntegrityError,
    DataError...) when the database refuses them, on either database.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), list(rows))
        return
    columns = [column for column in table.columns if column.name in rows[0]]
    names = [column.name for column in columns]
    # Only the columns whose type converts a value (JSON, UTC times) are visited per row.
    processed = [
        (index, process)
        for index, process in enumerate(_bind_processor(conn, column) for column in columns)
        if process is not None
    ]
    values_of = itemgetter(*names)
    statement = sql.SQL("copy {} ({}) from stdin").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                values = list(values_of(row)) if len(names) > 1 else [values_of(row)]
                for index, process in processed:
                    value = values[index]
                    if value is not None and type(value) is not JSONText:
                        values[index] = process(value)
                copy.write_row(values)
    except psycopg.Error as error:
        raise DBAPIError.instance(
            f"copy {table.name} ({', '.join(names)}) from stdin",
            None,
            error,
            psycopg.Error,
            connection_invalidated=raw.broken,
            dialect=conn.dialect,
        ) from error


def new_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """`count` fresh values of `table`'s `id` sequence (PostgreSQL only), for rows that
    `insert_rows` writes with their key already known (COPY returns nothing)."""
    found = conn.execute(
        text("select nextval(pg_get_serial_sequence(:table, 'id')) from generate_series(1, :n)"),
        {"table": table.name, "n": count},
    )
    return [int(value) for value in found.scalars()]


def _bind_processor(conn: Connection, column: Column[Any]) -> Callable[[Any], Any] | None:
    return column.type._cached_bind_processor(conn.dialect)
