"""Whether a pass could write to the database at all: asked before any pass (`sync`,
`serve`) and by `check` and update-in-app, so that a database that takes no writes is bad
configuration (exit 2) named once, not a failed pass per app and type every schedule."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from campaign_sync.db.models import metadata
from campaign_sync.db.session import sqlite_companions, sqlite_file, sqlite_read_only, writable

READ_ONLY = (
    "the database accepts no writes (transaction_read_only is on: a read "
    "replica, or default_transaction_read_only set for the database or the "
    "role): point DATABASE_URL at the primary, or lift the setting"
)


def _read_only(conn: Connection) -> str | None:
    """`READ_ONLY` when the session is read-only (PostgreSQL), or None."""
    read_only = conn.execute(text("select current_setting('transaction_read_only')"))
    return READ_ONLY if read_only.scalar() == "on" else None


def unwritable(engine: Engine, database_url: str) -> str | None:
    """Why no pass could store anything in this database, or None: a read-only session
    on PostgreSQL (a replica, default_transaction_read_only), a SQLite file that refuses
    writes or is opened read-only (`sqlite_write_problem`). One statement (PostgreSQL) or
    a few access(2) calls; the privileges `write_problem_of` also asks are left to
    `check` (a role for `sync` alone may lack those on update-in-app's audit table).
    `sync` into a read-only database failed each pass with "cannot execute INSERT in a
    read-only transaction", exit 1, where `check` said exit 2 (a review's find)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return _read_only(conn)
    return sqlite_write_problem(database_url)


def sqlite_write_problem(database_url: str) -> str | None:
    """Why a pass could not write to the SQLite file `database_url` names, asked of the
    file system (access(2): no lock taken, nothing written): the file, or its -wal or
    -shm file, refuses writes (permissions, an immutable file, a read-only mount), or the
    URL opens it read-only; None otherwise or for a URL naming no file (a directory that
    cannot take the -wal and -shm files is `sqlite_directory_problem`'s).
    `check` said "reachable" for a read-only file, where every sync then failed with
    "attempt to write a readonly database" (a newcomer's find)."""
    path = sqlite_file(database_url)
    if path is None or not path.exists():
        return None
    given = sqlite_read_only(database_url)
    if given is not None:
        return (
            f"the SQLite file {path} is opened read-only ({given} in DATABASE_URL): a "
            f"pass could not store anything; leave {given} out"
        )
    # Writes go through the file and its -wal and -shm files; a directory that cannot
    # take those when they are missing is `sqlite_directory_problem`'s (it cannot open).
    for where in (path, *(p for p in sqlite_companions(path) if p.exists())):
        if not writable(where):
            return (
                f"the SQLite file {where} accepts no writes here (its permissions, an "
                "immutable flag or a read-only mount): a pass could not store anything; "
                "make it writable for this user, or name another file"
            )
    return None


def write_problem_of(engine: Engine) -> str | None:
    """Why a pass could not write to this PostgreSQL database (a read replica, a database
    or role with default_transaction_read_only, a role without the privileges on a table
    of ours or on the sequences of their ids), or None. SQLite: None (`check_database`
    asks `sqlite_write_problem` instead). `check` reported "ready" for a read-only
    database, and for roles missing a table or a sequence, where every sync then failed."""
    if engine.dialect.name != "postgresql":
        return None
    # Every table of ours: a pass writes the campaigns, their children, versions,
    # sightings, warnings, runs, cursors, pacing and stats, and update-in-app the audit.
    tables = sorted(metadata.tables)
    with_ids = sorted(name for name, table in metadata.tables.items() if "id" in table.c)
    with engine.connect() as conn:
        read_only = _read_only(conn)
        if read_only is not None:
            return read_only
        # has_table_privilege with 'INSERT,UPDATE,DELETE' is true if any one is held.
        denied = list(
            conn.execute(
                text(
                    "select t from unnest(cast(:tables as text[])) as t where not ("
                    "has_table_privilege(t, 'SELECT') and has_table_privilege(t, 'INSERT') "
                    "and has_table_privilege(t, 'UPDATE') "
                    "and has_table_privilege(t, 'DELETE'))"
                ),
                {"tables": tables},
            ).scalars()
        )
        unusable = list(
            conn.execute(
                text(
                    "select s from (select pg_get_serial_sequence(t, 'id') as s from "
                    "unnest(cast(:tables as text[])) as t) as q where s is not null "
                    "and not has_sequence_privilege(s, 'USAGE')"
                ),
                {"tables": with_ids},
            ).scalars()
        )
    if denied:
        named = ", ".join(denied[:3]) + (f" and {len(denied) - 3} more" if len(denied) > 3 else "")
        return (
            f"the role may not read, insert, update and delete in {named}: grant it those "
            "privileges on campaign-sync's tables"
        )
    if unusable:
        more = f" and {len(unusable) - 1} more" if len(unusable) > 1 else ""
        return (
            f"the role may not use the sequence {unusable[0]}{more}: grant it USAGE on "
            "campaign-sync's sequences (their ids)"
        )
    return None
