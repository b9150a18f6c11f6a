"""Making the SQLAlchemy engine from `DATABASE_URL`, the same way everywhere."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SAWarning
from sqlalchemy.util import asbool

DB_CONNECT_TIMEOUT_SECONDS = 10  # PostgreSQL: to have an answer, unless the URL says


def normalize_url(url: str) -> str:
    """`postgresql://` (and `postgres://`) mean psycopg 3, as the contract promises."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "sslpassword")


def masked_url(url: str) -> str:
    """`url` fit to print: its password hidden, in the user part or the query string."""
    parsed = make_url(url)
    hidden = {k: "***" for k in parsed.query if k.lower() in SECRET_QUERY_KEYS}
    text = parsed.update_query_dict(hidden).render_as_string(hide_password=True)
    return text.replace("%2A%2A%2A", "***")


def database_problem(error: BaseException) -> str:
    """The first line of what the database (or its driver) said, without SQL or parameters
    (SQLAlchemy's own text adds `[SQL: ...]` and `[parameters: ...]` lines, which may hold
    campaign data): what every log line and message about a database error carries."""
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip()
    first = text.splitlines()[0][:300] if text else type(cause).__name__
    if getattr(cause, "sqlstate", None) == LOCK_NOT_AVAILABLE:
        return f"{first}: {LOCK_WAIT_HINT}"
    if getattr(cause, "sqlstate", None) == QUERY_CANCELED and "statement timeout" in first:
        return f"{first}: {STATEMENT_TIMEOUT_HINT}"
    if refused_privilege(error) and first.startswith(_CHECKED_PRIVILEGES):
        return f"{first}: {PRIVILEGE_HINT}"
    if _sqlite_locked(cause):
        return f"{first}: {SQLITE_LOCKED_HINT}"
    return first


def refused_privilege(error: BaseException) -> bool:
    """Whether the database refused a statement for the role's privileges (SQLSTATE 42501,
    PostgreSQL): bad configuration that no retry cures, which `sync` exits 2 for."""
    cause = getattr(error, "orig", None) or error
    return getattr(cause, "sqlstate", None) == INSUFFICIENT_PRIVILEGE


def passing_problem(error: BaseException) -> bool:
    """Whether the database failed in passing, so that the same command may work in a
    minute (exit 1, not the 2 of bad configuration): a connection lost (SQLSTATE class
    08), an operator's intervention (57: a shutdown, a cancel), a deadlock or
    serialization failure (40), a lock another session held too long (55P03, SQLite's
    "database is locked"), a connection SQLAlchemy found cut (libpq's own errors, no
    SQLSTATE: a proxy or PgBouncer dropping it; `lost_connection`)."""
    if getattr(error, "connection_invalidated", False):
        return True
    cause = getattr(error, "orig", None) or error
    sqlstate = str(getattr(cause, "sqlstate", None) or "")
    return (
        sqlstate[:2] in ("08", "57", "40")
        or sqlstate == LOCK_NOT_AVAILABLE
        or _sqlite_locked(cause)
        or (not sqlstate and lost_connection(cause))
    )


# libpq's words for a connection lost under a statement, which carry no SQLSTATE
# (interfaces/libpq/fe-misc.c and fe-secure.c; the texts SQLAlchemy's psycopg2 dialect
# looks for in its is_disconnect), and psycopg's own for a connection found closed.
_LOST_CONNECTION_WORDS = (
    "terminating connection",
    "closed the connection",
    "connection has been closed unexpectedly",
    "connection not open",
    "could not receive data from server",
    "could not send data to server",
    "SSL SYSCALL error",
    "the connection is closed",
    "the connection is lost",
)


def lost_connection(cause: BaseException) -> bool:
    """Whether a driver error with no SQLSTATE says the connection was lost (its first
    line holds one of libpq's or psycopg's words for it). SQLAlchemy marks such a cut
    `connection_invalidated` only when it has the connection to look at: one that met its
    first use of a new connection (the dialect's `initialize`, on an engine's first
    connect) came without, and `check` and `migrate` took it for bad configuration,
    exit 2 (3 runs of 40 under repeated pg_terminate_backend, a review's find). Not a
    connect's own refusal ("Connection refused", a host name that does not resolve):
    those name the URL's mistake as often as a server down, and libpq's text of a failed
    connect quotes the host first, `connection to server at "db", port 5432 failed: ...`:
    words after a quote are not taken (as SQLAlchemy's own check does, which also keeps a
    database or role named with those words from matching)."""
    text = str(cause).strip()
    first = text.splitlines()[0] if text else ""
    if first.startswith("connection failed:"):  # psycopg's text of a connect that failed
        return False
    for words in _LOST_CONNECTION_WORDS:
        at = first.find(words)
        if at >= 0 and '"' not in first[:at]:
            return True
    return False


def _sqlite_locked(cause: BaseException) -> bool:
    return type(cause).__name__ == "OperationalError" and str(cause).startswith(
        ("database is locked", "database table is locked")
    )


LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout (PostgreSQL, appendix A)
LOCK_WAIT_HINT = (
    "another session held a lock on one of campaign-sync's tables longer than the wait "
    "allowed (a transaction left open, an ALTER TABLE, a VACUUM FULL: pg_locks shows which)"
)
QUERY_CANCELED = "57014"  # SQLSTATE of a statement_timeout or a cancel (appendix A)
INSUFFICIENT_PRIVILEGE = "42501"  # SQLSTATE of "permission denied for ..." (appendix A)
PRIVILEGE_HINT = "the role lacks a privilege campaign-sync needs (campaign-sync check names them)"
# The refusals `check` names the grants for (not a schema's CREATE, which `migrate` needs,
# nor a row-level security policy's, also 42501: a review's find).
_CHECKED_PRIVILEGES = ("permission denied for table", "permission denied for sequence")
# A statement_timeout campaign-sync never sets: a role's, a database's or the URL's own
# (`?options=-c statement_timeout=...`). Said, so that a value too short to ever let a
# pass through is found where it is set (a review's find: exit 1, and nothing said where).
STATEMENT_TIMEOUT_HINT = (
    "a statement_timeout set for the role, the database or in DATABASE_URL's options "
    "(SHOW statement_timeout) cut the statement: lift it or make it longer for "
    "campaign-sync's role"
)
SQLITE_LOCKED_HINT = (
    "another process held the SQLite file's write lock longer than the wait allowed (a "
    "long write, or a tool holding a transaction open on it)"
)


T = TypeVar("T")


def read_with_reconnect(engine: Engine, read: Callable[[Connection], T]) -> T:
    """`read(conn)`'s result, run once more on a fresh connection when the first one was
    lost during it (the server restarted or a proxy cut it: SQLAlchemy then marks the
    error `connection_invalidated`). `pool_pre_ping` only tests a connection when it is
    checked out; a cut while a statement runs still reaches the caller.

    Only for reads: a write whose connection is lost may or may not have committed, so
    writes are never repeated here. Raises the second failure, or any other error."""
    try:
        with engine.connect() as conn:
            return read(conn)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    with engine.connect() as conn:
        return read(conn)


DEAD_PEER_PARAMETERS = {
    "keepalives": 1,
    "keepalives_idle": 30,  # seconds idle before the first probe
    "keepalives_interval": 10,  # seconds between probes
    "keepalives_count": 3,  # probes unanswered before the connection is dead
    "tcp_user_timeout": 60_000,  # milliseconds of unacknowledged data
}


# How long a statement of a pass (or of status, state, update-in-app) waits for a lock
# another session holds before it fails: an analyst's transaction left open on a campaign
# row, an ALTER TABLE or a VACUUM FULL by hand. Without it a pass waited for ever, holding
# its lease; with it the pass fails (SQLSTATE 55P03, `database_problem` says what) and the
# next one tries again. SQLite's own wait, its busy timeout, is the same 60 s.
LOCK_TIMEOUT_SECONDS = 60.0


def lock_timeout_value(seconds: float | None = None) -> str:
    """A SQL expression of the lock_timeout to set (PostgreSQL): `seconds` (default
    `LOCK_TIMEOUT_SECONDS`), unless the session already has a shorter one (a role's or a
    database's, a DBA's choice, which a longer wait of ours must not undo: a review's
    find)."""
    ms = round((LOCK_TIMEOUT_SECONDS if seconds is None else seconds) * 1000)
    now = "current_setting('lock_timeout')::interval"
    return (
        f"case when {now} > interval '0' and {now} < interval '{ms} milliseconds'"
        f" then current_setting('lock_timeout') else '{ms}ms' end"
    )


BRIEF_LOCK_TIMEOUT_SECONDS = 5.0  # bookkeeping after a wait already spent waits no longer


def wait_briefly_for_locks(conn: Connection) -> None:
    """Within `conn`'s transaction, wait for another session's lock at most
    `BRIEF_LOCK_TIMEOUT_SECONDS` (PostgreSQL; a shorter lock_timeout of the role's or the
    database's is kept; SQLite keeps its busy timeout): for a pass's bookkeeping once the
    pass is over or has failed (the lease given back, the run of a pass that never began),
    which must not keep the process a whole `LOCK_TIMEOUT_SECONDS` more."""
    if conn.dialect.name == "postgresql":
        value = lock_timeout_value(BRIEF_LOCK_TIMEOUT_SECONDS)
        conn.execute(text(f"select set_config('lock_timeout', {value}, true)"))


MIGRATION_LOCK = (0x43534E43, 0x4D494752)  # "CSNC", "MIGR": our advisory lock's two keys


def take_migration_turn(conn: Connection) -> None:
    """Wait, inside `conn`'s transaction, until no other process migrates or makes views
    of ours again (PostgreSQL: an advisory lock released with the transaction, so it
    works through PgBouncer too; SQLite's write lock does the same for its migrators).
    A turn is waited for however long the work before takes: a lock_timeout of the
    role's or the database's (docs/deploy.md suggests one behind PgBouncer) failed the
    second replica instead; it applies again once the turn is ours."""
    if conn.dialect.name != "postgresql":
        return
    configured = conn.exec_driver_sql("show lock_timeout").scalar()
    conn.exec_driver_sql("set local lock_timeout = 0")
    conn.execute(
        text("select pg_advisory_xact_lock(:a, :b)"),
        {"a": MIGRATION_LOCK[0], "b": MIGRATION_LOCK[1]},
    )
    conn.execute(text("select set_config('lock_timeout', :value, true)"), {"value": configured})


def wait_for_locks(conn: Connection) -> None:
    """Lift the lock timeout, and any statement timeout of the role's or the database's,
    for the rest of `conn`'s transaction (PostgreSQL): for what must be recorded whatever
    another session holds (what Batch already took)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(UNBOUNDED_WAIT)


# One statement: no lock timeout, no statement timeout, this transaction only.
UNBOUNDED_WAIT = (
    "select set_config('lock_timeout', '0', true), set_config('statement_timeout', '0', true)"
)


def make_engine(
    url: str, *, schema: str | None = None, lock_timeout: bool = False, **kwargs: Any
) -> Engine:
    """The engine for `url`; on PostgreSQL, `schema` (CAMPAIGN_SYNC_DB_SCHEMA) is where every
    table, view and the Alembic version table live: each connection's search_path, and
    `lock_timeout` bounds each statement's wait for another session's lock to
    `LOCK_TIMEOUT_SECONDS` (not for `migrate`: migrators wait their turn on a lock for as
    long as the migration before them takes)."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": LOCK_TIMEOUT_SECONDS}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # No server-side prepared statements: behind PgBouncer in transaction pooling (its most
    # common mode) a statement prepared on one server connection is unknown on the next,
    # and psycopg prepares any statement run 5 times (psycopg docs, "Prepared statements").
    #
    # libpq waits for a server that accepts the connection but never answers as long as the
    # kernel lets it (measured: `status` hung 131 s against such a listener); a URL's own
    # `?connect_timeout=N` (libpq's parameter) wins over this default.
    connect_args = {"prepare_threshold": None, **kwargs.pop("connect_args", {})}
    query = make_url(url).query
    if "connect_timeout" not in query:
        connect_args.setdefault("connect_timeout", DB_CONNECT_TIMEOUT_SECONDS)
    # A database host that vanishes mid-pass (a network partition, a failover that drops
    # packets) left a call waiting for ever: libpq waits on the socket as long as the
    # kernel does. TCP keepalives find an idle dead peer in ~60 s, and tcp_user_timeout
    # (Linux) fails a call whose data goes unacknowledged 60 s (libpq's connection
    # parameters, "keepalives*" and "tcp_user_timeout"). The URL's own values win.
    for name, value in DEAD_PEER_PARAMETERS.items():
        if name not in query:
            connect_args.setdefault(name, value)
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
    # The session's TimeZone is UTC whatever the server's, role's or database's default:
    # psycopg reads a timestamptz in the session's zone, and 0001-01-01 UTC read in
    # America/New_York is a year before 1, which no Python datetime holds (DataError: the
    # whole --stats pass failed on one campaign created in year 1; 9999-12-31 in Asia/Tokyo
    # alike). PgBouncer tracks TimeZone per client and sets it on each server connection
    # it lends (its docs, "track_extra_parameters"), so this holds in transaction pooling.
    #
    # The search_path (CAMPAIGN_SYNC_DB_SCHEMA) is set before SQLAlchemy first reads
    # current_schema() (insert=True), so inspection and Alembic see the schema as the
    # default one (SQLAlchemy's PostgreSQL docs, "Setting Alternate Search Paths on
    # Connect"). Behind PgBouncer in transaction pooling, also set it on the role:
    # ALTER ROLE ... SET search_path = <schema>.
    settings = ["set time zone 'UTC'"]
    if schema is not None and schema != "public":
        settings.append(f'set search_path to "{schema}"')
    if lock_timeout:
        settings.append(f"select set_config('lock_timeout', {lock_timeout_value()}, false)")

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        return open_connection(lambda: dialect.connect(*cargs, **cparams), settings)

    return engine


def open_connection(connect: Callable[[], Any], settings: list[str]) -> Any:
    """A new DBAPI connection from `connect()`, `settings` (SQL statements) run on it in
    autocommit (SQLAlchemy's `do_connect` event runs this for every connection of the
    engine, the one `pool_pre_ping` opens in place of a dead one included). One that dies
    during those statements (the server restarting, a proxy or `pg_terminate_backend`
    cutting it: psycopg then sets `Connection.broken`) has run nothing of ours, so another
    is opened in its place, once: a cut that met the pool opening a connection failed the
    pass (2% of runs of the cut-between-pages test under load), where the same cut a moment
    earlier or later is replaced by the pre-ping or `read_with_reconnect`. Raises the
    second failure, any other error of the statements, and any error of the first
    `connect()` itself (a server refusing or not answering is not retried here: the pass
    fails and the next one tries again); when the replacement's own connect fails (a
    server restarting), the cut that came first."""
    first = connect()
    try:
        _apply_settings(first, settings)
        return first
    except Exception as cut:
        first.close()
        if not getattr(first, "broken", False):
            raise
        try:
            second = connect()
        except Exception:
            # The server restarting refuses the new connection: the cut is what happened
            # (SQLSTATE 57P01, in passing, exit 1), not "Connection refused", which names a
            # URL's mistake (exit 2; a review's find).
            raise cut from None
    try:
        _apply_settings(second, settings)
    except Exception:
        second.close()
        raise
    return second


def _apply_settings(dbapi_connection: Any, settings: list[str]) -> None:
    """Run `settings` on a new connection, in autocommit (SET outside any transaction,
    so that they last for the session), then put its autocommit back."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    with dbapi_connection.cursor() as cursor:
        for statement in settings:
            cursor.execute(statement)
    dbapi_connection.autocommit = autocommit


def create_schema(url: str, schema: str | None) -> None:
    """Create the PostgreSQL schema when it is not `public` and does not exist yet. Looked
    up first: `create schema if not exists` needs CREATE on the database even when the
    schema is there, and a role given only a schema made beforehand has none."""
    if schema is None or schema == "public" or make_url(url).get_backend_name() == "sqlite":
        return
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            there = conn.execute(
                text("select 1 from pg_namespace where nspname = :schema"), {"schema": schema}
            ).first()
            if there is None:
                conn.exec_driver_sql(f'create schema if not exists "{schema}"')
    finally:
        engine.dispose()


def sqlite_directory_problem(url: str) -> str | None:
    """Why the SQLite file `url` names cannot be opened or created: it is a directory, or
    its directory is missing or is no directory, or takes no new files while the file's
    -wal and -shm files, which SQLite makes there to open it (journal_mode=WAL), are not
    there yet ("unable to open database file" is all SQLite says); None otherwise.
    Raises OSError for a path no file system call accepts (too long, a loop of links)."""
    path = sqlite_file(url)
    if path is None:
        return None
    if path.is_dir():
        return f"{path} is a directory, not a SQLite file"
    if path.exists():
        real = path.resolve()
        missing = not all(p.exists() for p in sqlite_companions(path))
        # immutable=1: SQLite reads without them (read-only media), and writes nothing
        if missing and not sqlite_read_only(url) and not writable(real.parent):
            return (
                f"the directory {real.parent} takes no new files here (its permissions, an "
                "immutable flag or a read-only mount), and SQLite makes the -wal and -shm "
                f"files of {real.name} there to open it (one or both are missing)"
            )
        return None
    directory = path.parent
    if not directory.exists():
        return f"the directory {directory} of the SQLite file {path.name} does not exist"
    if not directory.is_dir():
        return f"{directory}, where the SQLite file {path.name} would go, is no directory"
    if not writable(directory):
        return (
            f"the directory {directory} takes no new files here (its permissions, an "
            f"immutable flag or a read-only mount): SQLite cannot make {path.name} there"
        )
    return None


def sqlite_companions(path: Path) -> tuple[Path, Path]:
    """The -wal and -shm files of the SQLite file `path` (journal_mode=WAL), beside the
    file it resolves to, where SQLite makes them (it follows links)."""
    real = path.resolve()
    return real.with_name(f"{real.name}-wal"), real.with_name(f"{real.name}-shm")


def writable(path: Path) -> bool:
    """Whether this process may write `path`, by its effective ids and capabilities
    (access(2) with AT_EACCESS: a non-root process granted CAP_DAC_OVERRIDE, as some
    containers are, may; plain access(2) asks for the real user only). Root is refused
    only by an immutable flag or a read-only mount."""
    effective = os.access in os.supports_effective_ids
    return os.access(path, os.W_OK, effective_ids=effective)


def sqlite_read_only(url: str) -> str | None:
    """The URI parameter with which SQLite opens the file `url` names read-only
    (`mode=ro`, or `immutable` true as sqlite3_uri_boolean reads it: yes, true, on, or
    text beginning with a non-zero number), as written in the URL; None otherwise."""
    query = make_url(url).query
    if query.get("mode") == "ro":
        return "mode=ro"
    immutable = str(query.get("immutable", "")).strip().lower()
    leading = re.match(r"[0-9]+", immutable)
    if immutable in ("yes", "true", "on") or (leading is not None and int(leading[0])):
        return f"immutable={query.get('immutable')}"
    return None


def sqlite_query_problem(url: str) -> str | None:
    """Why a SQLite `url`'s query string would not do what it says, read by SQLAlchemy's
    own SQLite driver (SQLAlchemy's SQLite docs, "URI Connections"): SQLite's URI
    parameters such as `mode=ro` are read only with `uri=true`, and then only for a path
    starting with `file:`. Otherwise the driver ignores them (its warning, given in its
    words) or opens a file whose name holds them: a database meant read-only would be
    written, or a new empty one made. None for another database, or nothing amiss."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.query:
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SAWarning)
        try:
            engine = create_engine(parsed)  # no connection: the driver reads the URL here
        except (ValueError, TypeError) as wrong:  # ?timeout=abc
            return f"a parameter of the SQLite driver has an unusable value: {wrong}"
        try:
            (filename, *_), options = engine.dialect.create_connect_args(parsed)
        finally:
            engine.dispose()
    ignored = {str(w.message).split(" (Background on this")[0]: None for w in caught}
    if ignored:  # each once: creating the engine and reading its arguments both warn
        return "; ".join(ignored)
    if options.get("uri") and "?" in str(filename) and not str(filename).startswith("file:"):
        return (
            f"with uri=true, SQLite reads the parameters only after a path starting with "
            f"file: (sqlite:///file:{parsed.database}?...&uri=true); as written it would "
            f"open a file named {str(filename)!r}"
        )
    return None


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite `url` names; None for another database or an in-memory one. With
    `uri=true`, a `file:` path is SQLite's URI filename (sqlite.org/uri.html): its path,
    percent-decoded, after an empty or `localhost` authority; `mode=memory` is in memory.
    (Without `uri=true`, SQLite takes `file:x.db` as the file's very name.)"""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return None
    if not (database.startswith("file:") and asbool(parsed.query.get("uri", False))):
        return Path(database)
    if parsed.query.get("mode") == "memory":
        return None
    path = database[len("file:") :]
    if path.startswith("//"):  # file://localhost/x.db, file:///x.db
        slash = path.find("/", 2)
        path = path[slash:] if slash >= 0 else ""
    path = unquote(path)
    return Path(path) if path not in ("", ":memory:") else None


def missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file `url` names when it does not exist (connecting would create it empty)."""
    path = sqlite_file(url)
    return None if path is None or path.exists() else path
