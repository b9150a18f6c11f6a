"""`campaign-sync check`: are the settings, the database and each app's keys ready for a pass?

Reads only: one list call per app (limit 1), the database's schema revision, and the live
API key fingerprints its passes recorded (`sync_state.api_key_fingerprint`). It never
creates a database file, takes no lock and writes no row.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace

import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from campaign_sync.batch.client import ClientOptions, key_fingerprint
from campaign_sync.batch.errors import (
    AuthenticationInvalid,
    BatchError,
    RetryBudgetExhausted,
    TooManyRequests,
)
from campaign_sync.config import ResolvedApp, Settings
from campaign_sync.db.migrate import (
    KNOWN_REVISIONS,
    ForeignSchema,
    SchemaNotCurrent,
    SchemaNotUsable,
    UnrecordedSchema,
    current_revision,
    ensure_current,
    head_revision,
    misplaced_problem,
    missing_objects,
    missing_tables_problem,
)
from campaign_sync.db.session import (
    database_problem,
    make_engine,
    masked_url,
    missing_sqlite_file,
    passing_problem,
    sqlite_directory_problem,
    sqlite_query_problem,
)
from campaign_sync.db.state import key_refusal, key_refusal_text
from campaign_sync.db.writable import sqlite_write_problem, write_problem_of
from campaign_sync.domain import CampaignType
from campaign_sync.outcome import RunCounts
from campaign_sync.runner import client_options, make_client

OK, FAILED, USAGE = 0, 1, 2  # the exit codes of `sync`


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was checked, what we found, and the exit code it means."""

    subject: str
    message: str
    code: int = OK

    @property
    def ok(self) -> bool:
        return self.code == OK


def write_problem(database_url: str, schema: str | None = None) -> str | None:
    """`write_problem_of` an engine made for `database_url` (and `schema`); None for
    SQLite, whose file `check_database` asks of first (`sqlite_write_problem`)."""
    if make_url(database_url).get_backend_name() != "postgresql":
        return None
    engine = make_engine(database_url, schema=schema, lock_timeout=True)
    try:
        return write_problem_of(engine)
    finally:
        engine.dispose()


def check_database(database_url: str, schema: str | None = None) -> Finding:
    subject = f"database {masked_url(database_url)}"
    unusable = (
        sqlite_query_problem(database_url)
        or sqlite_directory_problem(database_url)
        or sqlite_write_problem(database_url)  # opening it could say only "unable to open"
    )
    if unusable is not None:  # before anything opens it: SQLite would make the file
        return Finding(subject, unusable, USAGE)
    missing = missing_sqlite_file(database_url)
    if missing is not None:
        return Finding(subject, f"{missing} does not exist: run campaign-sync migrate", USAGE)
    try:
        current = current_revision(database_url, schema, lock_timeout=True)
    except SQLAlchemyError as error:
        return _unreadable(subject, error)
    head = head_revision()
    if current == head:
        try:
            absent = _absent(database_url, schema)
            refused = absent or write_problem(database_url, schema)
        except SQLAlchemyError as error:
            return _unreadable(subject, error)
        if refused is not None:
            return Finding(subject, refused, USAGE)
        return Finding(subject, f"reachable, schema at revision {head} (the newest)")
    if current is None or current not in KNOWN_REVISIONS:
        engine = make_engine(database_url, schema=schema, lock_timeout=True)
        try:
            ensure_current(engine)  # names the fix for a dump to adopt or a newer revision
        except SQLAlchemyError as error:  # its reflection waited on a lock, or the cut
            return _unreadable(subject, error)
        except (UnrecordedSchema, ForeignSchema, SchemaNotUsable) as unusable:
            return Finding(subject, str(unusable), USAGE)
        except SchemaNotCurrent as unknown:
            if current is not None:
                return Finding(subject, str(unknown), USAGE)
        finally:
            engine.dispose()
    at = "has no campaign-sync schema" if current is None else f"is at revision {current}"
    return Finding(
        subject, f"migrations pending: it {at}, the newest is {head}: run campaign-sync migrate",
        USAGE,
    )  # fmt: skip


def _unreadable(subject: str, error: SQLAlchemyError) -> Finding:
    """A database check that failed: a connection refused or lost ("cannot connect"), or
    another database problem ("cannot read it"); exit 1 when it failed in passing (a lock
    held too long, a cut: `session.passing_problem`), else 2."""
    said = (
        "cannot connect"
        if isinstance(error, DBAPIError) and _unreached(error)
        else ("cannot read it")
    )
    code = FAILED if passing_problem(error) else USAGE
    return Finding(subject, f"{said}: {database_problem(error)}", code)


def _unreached(error: DBAPIError) -> bool:
    """The server could not be reached or dropped the connection (SQLSTATE class 08, or no
    SQLSTATE at all: libpq's own connection errors)."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate is None:  # a lock SQLite reports has none either
        return not passing_problem(error)
    return str(sqlstate).startswith("08") or error.connection_invalidated


def _absent(database_url: str, schema: str | None) -> str | None:
    """What the newest schema has that the database lacks, and the fix; None: nothing.
    A view or table dropped by hand passed as 'schema at the newest revision'."""
    engine = make_engine(database_url, schema=schema, lock_timeout=True)
    try:
        tables, views = missing_objects(engine)
        misplaced = misplaced_problem(engine, tables, views)
    finally:
        engine.dispose()
    if misplaced is not None:
        return misplaced
    if tables:
        return missing_tables_problem(tables)
    if views:
        return (
            f"the schema lacks the view(s) {', '.join(views)}: run campaign-sync migrate, "
            "which makes missing views again"
        )
    return None


def rejected_key(error: AuthenticationInvalid, app: ResolvedApp) -> str:
    """Which key Batch refused, from its message ("Invalid REST API key", "Invalid API key")."""
    said = error.batch_message.lower()
    if "rest" in said:
        return (
            "Batch refused the REST API key (BATCH_REST_API_KEY, or the app's rest_api_key_env "
            "or rest_api_key)"
        )
    if "api key" in said:
        return f"Batch refused the live API key of app '{app.name}' (BATCH_API_KEY or api_key)"
    return f"Batch refused the REST API key or the live API key of app '{app.name}'"


CHECK_ATTEMPTS = 3  # the list call, and two retries after a transient failure
CHECK_MAX_SECONDS = 30.0  # for all of them, waits included
# Each attempt's connect and read timeouts: three of them and the backoffs between them
# (0.5-1.5 s, then 1-2 s with the default backoff) fit in CHECK_MAX_SECONDS, so a server
# that never answers still gets its three attempts. A one-entry list answers in well
# under a second when Batch is well.
CHECK_ATTEMPT_SECONDS = 9.0


def check_limits(settings: Settings) -> str:
    """The limits check works within, in words, each named by what set it: check's own
    (`CHECK_ATTEMPTS`, `CHECK_MAX_SECONDS`) or the user's tighter setting."""
    attempts, seconds = settings.retry_max_attempts, settings.retry_max_seconds
    if attempts >= CHECK_ATTEMPTS and seconds >= CHECK_MAX_SECONDS:
        return f"{CHECK_ATTEMPTS} attempts within {CHECK_MAX_SECONDS:g}s (check's own limits)"
    tries = (
        f"{attempts} attempt{'s' if attempts > 1 else ''} (CAMPAIGN_SYNC_RETRY_MAX_ATTEMPTS)"
        if attempts < CHECK_ATTEMPTS
        else f"{CHECK_ATTEMPTS} attempts (check's own limit)"
    )
    time = (
        f"{seconds:g}s (CAMPAIGN_SYNC_RETRY_MAX_SECONDS)"
        if seconds < CHECK_MAX_SECONDS
        else f"{CHECK_MAX_SECONDS:g}s (check's own limit)"
    )
    return f"{tries} within {time}"


def check_options(settings: Settings, app: ResolvedApp) -> ClientOptions:
    """The app's client options (`runner.client_options`) within check's limits: at most
    `CHECK_ATTEMPTS` attempts within `CHECK_MAX_SECONDS`, each connection and each read
    waited for at most `CHECK_ATTEMPT_SECONDS`; never more than the settings allow."""
    options = client_options(settings, app)
    budget = options.retry
    return replace(
        options,
        connect_timeout=min(options.connect_timeout, CHECK_ATTEMPT_SECONDS),
        read_timeout=min(options.read_timeout, CHECK_ATTEMPT_SECONDS),
        retry=replace(
            budget,
            max_attempts=min(budget.max_attempts, CHECK_ATTEMPTS),
            max_seconds=min(budget.max_seconds, CHECK_MAX_SECONDS),
            named_by="check's own limit"
            if budget.max_seconds >= CHECK_MAX_SECONDS  # as check_limits names it
            else budget.named_by,
        ),
    )


def recorded_key_problems(
    database_url: str, schema: str | None, apps: Sequence[ResolvedApp]
) -> dict[str, str]:
    """By app name: why its passes will be refused because its live API key is not the one
    its campaigns were synced with (`state.key_refusal`, the pass's own rule, for each
    type); apps with no such problem are left out. Reads the database at the newest
    schema revision (call it after `check_database` found it so).

    Raises `sqlalchemy.exc.SQLAlchemyError` when the database cannot be read."""
    problems: dict[str, str] = {}
    engine = make_engine(database_url, schema=schema, lock_timeout=True)
    try:
        with engine.connect() as conn:
            for app in apps:
                fingerprint = key_fingerprint(app.api_key)
                refused = [
                    campaign_type
                    for campaign_type in CampaignType
                    if key_refusal(conn, app.name, campaign_type, fingerprint)[0] is not None
                ]
                if refused:
                    passes = " and ".join(campaign_type.label for campaign_type in refused)
                    problems[app.name] = key_refusal_text(
                        app.name, refused, f"its {passes} passes will be refused"
                    )
    finally:
        engine.dispose()
    return problems


async def check_app(
    settings: Settings,
    app: ResolvedApp,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    key_problem: str | None = None,
) -> Finding:
    """One list call (limit 1) for the app, within check's limits (`check_options`): a
    refused key answers at once and is never retried; a 5xx, a cut answer or a timeout
    is Batch's or the network's passing trouble, tried again a little; a 429 is waited out
    as a pass would, within those limits. `key_problem` (`recorded_key_problems`): the
    database's own reason to refuse the app's passes, reported when Batch accepts the keys
    (a key of another Batch app is one Batch accepts)."""
    subject = f"app '{app.name}'"
    counts = RunCounts()
    client = make_client(settings, app, transport=transport, options=check_options(settings, app))
    try:
        async with client:
            await client.list_campaigns(CampaignType.PUSH, limit=1, counts=counts)
    except BatchError as error:
        exhausted = error if isinstance(error, RetryBudgetExhausted) else None
        cause = exhausted.last_error if exhausted is not None else error
        if isinstance(cause, AuthenticationInvalid):
            detail = f" ({cause.summary}: {cause.batch_message})" if cause.batch_message else ""
            return Finding(subject, f"{rejected_key(cause, app)}{detail}", FAILED)
        tries = f" (after {counts.retries + 1} attempts)" if counts.retries else ""
        if client.gate.total_429:
            refused = client.gate.total_429
            answers = f"{refused} answer{'s' if refused > 1 else ''} of 429 Too Many Requests"
            asked = _asked(cause.retry_after) if isinstance(cause, TooManyRequests) else ""
            then = "" if isinstance(cause, TooManyRequests) else f"; then {cause}"
            # The attempts made, then the limits: one 429 asking for 100 s ends check after
            # one attempt, which "could not be checked in 3 attempts" misstated (a review's
            # find).
            made = counts.retries + 1
            return Finding(
                subject,
                f"Batch is limiting this app's requests ({answers}{asked}): its keys could "
                f"not be checked after {made} attempt{'s' if made > 1 else ''}, the limits "
                f"being {check_limits(settings)}; run check again later{then}",
                FAILED,
            )
        return Finding(subject, f"{cause}{tries}", FAILED)
    tries = f", answered at attempt {counts.retries + 1}" if counts.retries else ""
    if key_problem is not None:
        return Finding(subject, f"Batch accepted both keys{tries}, but {key_problem}", FAILED)
    return Finding(subject, f"both keys accepted (one list call{tries})")


def _asked(retry_after: float | None) -> str:
    """What the last 429's Retry-After asked for, in words."""
    if not retry_after:
        return ""
    if retry_after > 3600:
        return ", the last asking to wait more than an hour"
    return f", the last asking to wait {retry_after:.0f}s"


def metrics_address_problem(settings: Settings) -> tuple[str, bool] | None:
    """Why `serve` could not listen for /metrics and /healthz where the settings say, and
    whether the host is at fault (True: no address of this machine, a configuration
    error) rather than the port (False: taken now, perhaps by a running `serve`); None
    when it could, or when metrics are off (port 0). The message names the setting at
    fault where its value came from. Binds a socket as uvicorn does (SO_REUSEADDR), then
    closes it."""
    host, port = settings.metrics_host, settings.metrics_port
    if port == 0:
        return None
    try:  # as uvicorn binds it: IPv6 when the host has a ':', SO_REUSEADDR
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        # Only a taken or privileged port is the port's fault: any other error (no such
        # address, a link-local one without its zone: EINVAL; no IPv6 here) is the host's.
        if error.errno not in (errno.EADDRINUSE, errno.EACCES):
            return (  # the host is wrong, not the port
                f"{settings.source_of('metrics_host')}: {host!r} is no address of this "
                f"machine ({error.strerror}): 127.0.0.1 for this machine only, 0.0.0.0 "
                "for every interface",
                True,
            )
        return (
            f"{settings.source_of('metrics_port')}: port {port} cannot be used on {host} "
            f"({error.strerror}): choose another port, or 0 to turn metrics off",
            False,
        )
    return None


def check_metrics(settings: Settings) -> Finding:
    """Where `serve` would answer /metrics and /healthz. A host that is no address of this
    machine is a configuration error (exit 2); a port taken now is only reported, as the
    `serve` being checked may hold it."""
    host, port = settings.metrics_host, settings.metrics_port
    if port == 0:
        return Finding("metrics", "off (port 0): serve answers no /metrics or /healthz")
    problem = metrics_address_problem(settings)
    if problem is None:
        return Finding("metrics", f"serve would listen on {host}:{port}")
    message, host_at_fault = problem
    if host_at_fault:
        return Finding("metrics", message, USAGE)
    return Finding("metrics", f"{message} (a serve running now holds it?)")


def run_checks(
    settings: Settings,
    apps: Sequence[ResolvedApp],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Finding]:
    database = check_database(settings.database_url, settings.db_schema)
    findings = [
        Finding("settings", f"{len(apps)} app(s): {', '.join(app.name for app in apps)}"),
        database,
        check_metrics(settings),
    ]
    key_problems: dict[str, str] = {}
    if database.ok:
        try:
            key_problems = recorded_key_problems(settings.database_url, settings.db_schema, apps)
        except SQLAlchemyError as error:  # it answered a moment ago: a lock, a cut
            code = FAILED if passing_problem(error) else USAGE
            findings[1] = Finding(
                database.subject, f"cannot read the recorded keys: {database_problem(error)}", code
            )

    async def all_apps() -> list[Finding]:
        return list(
            await asyncio.gather(
                *(
                    check_app(
                        settings, app, transport=transport, key_problem=key_problems.get(app.name)
                    )
                    for app in apps
                )
            )
        )

    return findings + asyncio.run(all_apps())


def exit_code(findings: Sequence[Finding]) -> int:
    """The worst: 2 when the configuration or the database is not ready, else 1 if an app
    failed, else 0."""
    return max((finding.code for finding in findings), default=OK)


__all__ = [
    "Finding",
    "check_app",
    "check_database",
    "exit_code",
    "recorded_key_problems",
    "run_checks",
]
