"""The `campaign-sync` command line: parses, calls, prints. No business logic here.

Each command imports what it needs when it runs, so `--help` and `--version` start fast.
Errors become one line on stderr naming what to fix (decided once, in `CampaignSyncGroup`);
exit codes follow the contract.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from click.core import ParameterSource

from campaign_sync.logs import (
    READER_GONE,
    hold_until_configured,
    json_printable,
    printable,
    printable_lines,
    release_held,
)
from campaign_sync.startup import die_by_signal, set_up_begins, set_up_ends

if TYPE_CHECKING:
    import asyncio

    from sqlalchemy import Engine

    from campaign_sync.config import Settings
    from campaign_sync.outcome import PassResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LOG_LEVELS = ("debug", "info", "warning", "error")
F = TypeVar("F", bound=Callable[..., Any])


class Failure(Exception):
    """A command's own refusal: message for stderr, and the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class _NeverRaised(Exception):
    """Stands for an error class whose module was never imported (so it cannot be raised)."""


def _loaded(module: str, name: str) -> type[BaseException]:
    """The error class if its module is loaded; importing it just to compare would be slow."""
    loaded = sys.modules.get(module)
    return getattr(loaded, name, _NeverRaised) if loaded else _NeverRaised


def explain(error: Exception) -> tuple[str, int] | None:
    """The one line and exit code for an error we know; None for an unexpected one."""
    if isinstance(error, Failure):
        return str(error), error.code
    usage_errors = (
        _loaded("campaign_sync.config", "ConfigError"),
        _loaded("campaign_sync.db.revisions", "SchemaNotCurrent"),
        _loaded("campaign_sync.writeback", "UsageError"),
        _loaded("campaign_sync.batch.proxies", "UnusableNetworkSetting"),
    )
    if isinstance(error, usage_errors):
        return str(error), EXIT_USAGE
    if isinstance(error, _loaded("sqlalchemy.exc", "ArgumentError")):
        return f"DATABASE_URL is not a valid SQLAlchemy URL: {error}", EXIT_USAGE
    if isinstance(error, _loaded("sqlalchemy.exc", "DBAPIError")):
        from campaign_sync.db.session import database_problem, passing_problem

        # One line, never SQLAlchemy's text with the SQL and the values. Bad configuration
        # (exit 2): what an operational or programming error says (a URL, a role, the
        # schema), SQLite's "file is not a database" (a bare DatabaseError), a read-only
        # database or role (SQLSTATE class 25, an InternalError). Not so: what failed in
        # passing (a lost connection, an operator's intervention, a lock held too long),
        # an exception a trigger of the database's own raised (class P0), and anything
        # else the database refused (a DataError, an IntegrityError once Batch took an
        # update): the same command may work in a minute.
        sqlstate = str(getattr(getattr(error, "orig", None), "sqlstate", None) or "")
        said_of_settings = isinstance(
            error,
            (
                _loaded("sqlalchemy.exc", "OperationalError"),
                _loaded("sqlalchemy.exc", "ProgrammingError"),
            ),
        )
        not_a_database = type(error) is _loaded("sqlalchemy.exc", "DatabaseError")
        read_only = isinstance(error, _loaded("sqlalchemy.exc", "InternalError")) and (
            sqlstate.startswith("25")
        )
        in_passing = passing_problem(error) or sqlstate[:2] == "P0"
        configuration = (said_of_settings or not_a_database or read_only) and not in_passing
        code = EXIT_USAGE if configuration else EXIT_FAILED
        return f"database problem ({_database_hint()}): {database_problem(error)}", code
    if isinstance(error, _loaded("campaign_sync.batch.errors", "BatchError")):
        return str(error), EXIT_FAILED
    if isinstance(error, _loaded("campaign_sync.signals", "StoppedAtOnce")):
        return str(error), EXIT_FAILED
    if isinstance(error, OSError) and error.errno in _UNUSABLE_PATH and error.filename:
        # A path the settings name (--config, CAMPAIGN_SYNC_SECRETS_DIR, a SQLite file...)
        # that no file system call accepts: bad configuration, not a crash.
        where = str(error.filename)
        shown = where if len(where) <= 80 else f"{where[:60]}... ({len(where)} characters)"
        return f"cannot use the path {shown}: {error.strerror}", EXIT_USAGE
    return None


# What the file system says of a path that cannot be one: too long, a loop of links, a
# file where a directory was meant (errno names, Linux's open(2) and stat(2)).
_UNUSABLE_PATH = (errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR)


class CampaignSyncGroup(click.Group):
    """Turns every command's errors into one `campaign-sync: ...` line and an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        run = functools.partial(
            super().main, args, prog_name, complete_var, standalone_mode=False, **extra
        )
        if not standalone_mode:
            return run()
        try:
            code: Any = run()
        except click.ClickException as error:
            # Usage errors too: one line instead of click's usage, hint and error.
            hint = ""
            if isinstance(error, click.UsageError) and error.ctx is not None:
                hint = f" (see {error.ctx.command_path} --help)"
            click.echo(printable(f"campaign-sync: {error.format_message()}{hint}"), err=True)
            sys.exit(error.exit_code)
        except click.Abort as abort:
            _say("campaign-sync: aborted", err=True)
            if _by_ctrl_c(abort):  # not a "no" to a confirmation, nor its end of input
                end_by_signal(signal.SIGINT)
            sys.exit(EXIT_FAILED)
        except BrokenPipeError as broken:
            # click writes a blank line to stderr on KeyboardInterrupt before its Abort: with
            # stderr's reader gone (`| tee`, ended by the same Ctrl-C) that write raised
            # this instead, and the command exited 1, read as a refusal (a review's find).
            if _by_ctrl_c(broken):
                end_by_signal(signal.SIGINT)
            raise
        sys.exit(code if isinstance(code, int) else EXIT_OK)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, BrokenPipeError):
            # BrokenPipeError: the reader of our output is gone (`status | head -0`). It
            # read "unexpected error: BrokenPipeError"; click's own rule for it applies
            # instead: exit 1, silently, the output dropped (its `BaseCommand.main`).
            raise
        except Exception as error:
            known = explain(error)
            if known is None:
                debug = os.environ.get("CAMPAIGN_SYNC_DEBUG", "").strip().lower()
                if debug not in ("", "0", "false", "no", "off"):
                    raise
                known = (
                    f"unexpected error: {type(error).__name__}: {error} "
                    "(set CAMPAIGN_SYNC_DEBUG=1 to see the traceback)",
                    EXIT_FAILED,
                )
            message, code = known
            release_held()  # the warnings of a command that ended before logging was set up
            # stderr's reader gone: the exit code still tells (2 became 1)
            _echo_unless_gone(printable(f"campaign-sync: {message}"), err=True)
            ctx.exit(code)


def _database_hint() -> str:
    """The database URL in force (from any source), without its password."""
    ctx = click.get_current_context(silent=True)
    settings = ctx.meta.get("campaign_sync.settings") if ctx else None
    url = settings.database_url if settings else os.environ.get("DATABASE_URL")
    if not url:
        return "the default sqlite:///campaign_sync.db"
    from campaign_sync.db.session import masked_url

    return f"DATABASE_URL={masked_url(url)}"


def _from_environment(ctx: click.Context, name: str | None) -> bool:
    """Whether click took option `name`'s value from its variable, not the command line:
    left to the settings, which read the same variable and name it as the source."""
    return name is not None and ctx.get_parameter_source(name) is ParameterSource.ENVIRONMENT


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if _from_environment(ctx, param.name):
        value = None  # from its variable: the settings read it there, and name it so
    ctx.meta[f"campaign_sync.{param.name}"] = value
    return value


def settings_options(command: F) -> F:
    """`--config` and `--log-level`, on every command that reads the settings."""
    for option in (
        _remembered(
            "--log-level",
            "CAMPAIGN_SYNC_LOG_LEVEL",
            click.Choice(LOG_LEVELS, case_sensitive=False),
            "Log lines at this level and above.  [default: info]",
        ),
        _remembered(
            "--config",
            "CAMPAIGN_SYNC_CONFIG",
            click.Path(),  # checked by the settings, in one message for the flag and variable
            "TOML file of settings and apps.",
            "config_path",
        ),
    ):
        command = option(command)
    return command


def _remembered(
    name: str, envvar: str, kind: click.ParamType, text: str, *dest: str
) -> Callable[[F], F]:
    """An option read before the settings (kept in the context for `_settings`)."""
    return click.option(
        name, *dest, type=kind, envvar=envvar, show_envvar=True, expose_value=False,
        callback=_remember, help=text,
    )  # fmt: skip


def _settings(flags: dict[str, Any] | None = None, *, own_simulator: bool = False) -> Settings:
    """The settings, with this command's `flags` (field names) winning over every other
    source. `own_simulator`: the command talks to a simulator of its own (`demo`), so the
    configured base URL's proxy is not its concern."""
    flags = dict(flags or {})
    from campaign_sync.config import load_settings
    from campaign_sync.logs import setup_logging

    meta = click.get_current_context().meta
    log_level = meta.get("campaign_sync.log_level")
    if log_level:
        flags["log_level"] = log_level
    from campaign_sync.batch.proxies import check_certificates, proxy_for

    settings = load_settings(meta.get("campaign_sync.config_path"), **flags)
    meta["campaign_sync.settings"] = settings
    setup_logging(settings.log_format, settings.log_level)
    if not own_simulator:  # an unusable proxy, or plain http through another host: exit 2
        proxy_for(settings.batch_api_base_url, allow_insecure_http=settings.allow_insecure_http)
    check_certificates()
    return settings


def _refuse_in_memory(url: str) -> None:
    """An in-memory SQLite database lives as long as one connection: nothing would last."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise Failure(
            "DATABASE_URL names an in-memory SQLite database, which lasts as long as one "
            "connection: name a file instead (sqlite:///campaign_sync.db)",
            EXIT_USAGE,
        )


def _refuse_unusable_sqlite_path(url: str) -> None:
    """A SQLite path that cannot be a database file, named with why (SQLite says only
    "unable to open database file"), or a query string the SQLite driver would ignore
    (`?mode=ro` without `uri=true`): exit 2."""
    from campaign_sync.db.session import sqlite_directory_problem, sqlite_query_problem

    ignored = sqlite_query_problem(url)
    if ignored is not None:
        raise Failure(f"DATABASE_URL: {ignored}", EXIT_USAGE)
    problem = sqlite_directory_problem(url)
    if problem is not None:
        raise Failure(f"{problem} (DATABASE_URL): name another file", EXIT_USAGE)


def _engine(settings: Settings, *, passes: bool = False) -> Engine:
    """The database, refused unless it holds the newest schema (never creates a file);
    `passes` (sync, serve): refused too when it takes no writes (`db.writable.unwritable`:
    a replica, a read-only SQLite file), as bad configuration, before any pass."""
    _refuse_in_memory(settings.database_url)
    _refuse_unusable_sqlite_path(settings.database_url)
    from campaign_sync.db.revisions import SchemaNotCurrent, ensure_current
    from campaign_sync.db.session import make_engine, missing_sqlite_file

    missing = missing_sqlite_file(settings.database_url)
    if missing is not None:
        raise SchemaNotCurrent(
            f"the database file {missing} does not exist: run campaign-sync migrate "
            "(or set DATABASE_URL to the database to use)"
        )
    engine = make_engine(settings.database_url, schema=settings.db_schema, lock_timeout=True)
    # Closed with the command, however it ends: its connections say goodbye to the server
    # (no "unexpected EOF" in PostgreSQL's log), and none outlives an in-process run.
    click.get_current_context().call_on_close(engine.dispose)
    try:
        ensure_current(engine)
    except SchemaNotCurrent as refused:
        schema = _schema_named(settings)
        if not schema:
            raise
        raise type(refused)(f"{refused} ({schema})") from None
    if passes:
        from campaign_sync.config import ConfigError
        from campaign_sync.db.writable import unwritable

        problem = unwritable(engine, settings.database_url)
        if problem is not None:
            raise ConfigError(f"DATABASE_URL: {problem}")
    return engine


def _schema_named(settings: Settings) -> str:
    """The PostgreSQL schema in use, named, when it is not the default `public` (a
    forgotten CAMPAIGN_SYNC_DB_SCHEMA makes a database look empty); "" otherwise."""
    from sqlalchemy.engine import make_url

    if settings.db_schema == "public" or make_url(settings.database_url).get_backend_name() != (
        "postgresql"
    ):
        return ""
    return f"PostgreSQL schema {settings.db_schema}, CAMPAIGN_SYNC_DB_SCHEMA"


def _own_intervals(settings: Settings) -> dict[str, float]:
    """Seconds by app name, for the apps with an interval_seconds of their own in the config
    file (it wins over the global one, from any source)."""
    return {app.name: app.interval_seconds for app in settings.apps if app.interval_seconds}


def describe_result(result: PassResult) -> str:
    """One line per pass (and its error on the next): what `sync` prints."""
    where = f"{result.app}/{result.campaign_type.label}"
    if result.status == "skipped":
        return f"{where}: skipped (another process holds it: {result.error})"
    line = f"{where}: {result.status} - {result.counts.summary(result.seconds)}"
    if result.error:
        line += f"\n  error: {result.error}"
    return line


def _flag(name: str, text: str) -> Callable[[F], F]:
    """An on/off option."""
    return click.option(name, is_flag=True, help=text)


@click.group(
    cls=CampaignSyncGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="campaign-sync")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Sync Batch (batch.com) push and in-app campaigns into PostgreSQL or SQLite."""
    if ctx.invoked_subcommand not in _SET_UP_ENDED_BY_COMMAND:
        set_up_ends()
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


# The commands that end the set-up window themselves (`startup`: collector off, SIGTERM a
# clean stop), once their settings, imports and database are ready; for every other
# command the group ends it before the command runs.
_SET_UP_ENDED_BY_COMMAND = frozenset({"sync", "serve"})


def run() -> None:
    """The command line: `main` inside `startup`'s set-up window (the collector off,
    0.1-0.4 s of a `sync`'s start-up CPU; SIGTERM a clean stop), closed however the
    command ends (`--help`, a usage error). The executable's entry point,
    `startup.main`, opened the window already, before this module was imported; called
    on its own (a script, the tests), it opens it here."""
    set_up_begins()
    hold_until_configured()
    try:
        main()
    finally:
        set_up_ends()
        release_held()


@main.command(short_help="Create or upgrade the database schema.")
@click.option("--verbose", is_flag=True, help="Show each Alembic step.")
@_flag("--adopt", "Recognise tables that lack their revision record (a dump) and record it.")
@settings_options
def migrate(verbose: bool, adopt: bool) -> None:
    """Bring the database schema to the newest revision (same as `alembic upgrade head`).

    Several replicas may run it at once: they take turns (PostgreSQL and SQLite). With
    --adopt, tables that exist without their revision record (a restored dump) are
    recognised first.
    """
    from campaign_sync.db.migrate import (
        UnrecordedSchema,
        current_revision,
        restore_views,
        unrecorded_schema,
        upgrade,
    )
    from campaign_sync.db.migrate import adopt as adopt_schema
    from campaign_sync.db.session import make_engine, masked_url

    settings = _settings()
    if verbose:
        logging.getLogger("alembic").setLevel(logging.INFO)
    where = ", ".join(
        part for part in (masked_url(settings.database_url), _schema_named(settings)) if part
    )
    _refuse_in_memory(settings.database_url)
    _refuse_unusable_sqlite_path(settings.database_url)
    if adopt:
        adopted = adopt_schema(settings.database_url, settings.db_schema)
        if adopted is not None:
            click.echo(f"recognised the tables as revision {adopted} and recorded it ({where})")
    else:
        engine = make_engine(settings.database_url, schema=settings.db_schema)
        try:
            found = unrecorded_schema(engine)
        finally:
            engine.dispose()
        if found is not None:
            raise UnrecordedSchema(
                f"the database has campaign-sync tables (they match revision {found}) but no "
                "record of their revision (alembic_version): run campaign-sync migrate --adopt "
                "to record it and upgrade from there"
            )
    schema = settings.db_schema
    before = upgrade(settings.database_url, schema=schema)  # as found once it was our turn
    after = current_revision(settings.database_url, schema)
    if before == after:
        click.echo(f"database schema already at revision {after} ({where})")
    else:
        click.echo(f"database schema from revision {before or '(empty)'} to {after} ({where})")
    restored = restore_views(settings.database_url, schema)
    if restored:
        click.echo(f"made again the views that were missing: {', '.join(restored)}")


@main.command(short_help="One pass over every app and type, then exit.")
@click.option("--app", "app_names", multiple=True, help="Only this app (repeatable).")
@click.option(
    "--type",
    "type_names",
    type=click.Choice(["push", "in-app"]),
    multiple=True,
    help="Only this campaign type (repeatable).",
)
@click.option("--full-refresh", is_flag=True, help="Fetch every campaign's detail again.")
@click.option(
    "--allow-mass-delete",
    is_flag=True,
    help="Allow a sweep to mark more than half of the stored campaigns as deleted.",
)
@click.option("--stats", is_flag=True, help="Also fetch push statistics (CAMPAIGN_SYNC_STATS).")
@settings_options
def sync(
    app_names: tuple[str, ...],
    type_names: tuple[str, ...],
    full_refresh: bool,
    allow_mass_delete: bool,
    stats: bool,
) -> None:
    """One pass over every configured app and both campaign types, then exit.

    Exit 0 when all succeeded, 1 when some app/type failed (the others still synced),
    2 for bad configuration or usage (a pass the database refused for the role's
    privileges included: no retry cures it).
    """
    from campaign_sync.batch.client import import_transport
    from campaign_sync.config import resolve_apps, select_apps
    from campaign_sync.domain import CampaignType
    from campaign_sync.runner import pass_options, sync_apps
    from campaign_sync.signals import SYNC_CANCEL_SECONDS, run_until_signalled
    from campaign_sync.terminal import progress_for_terminal

    settings = _settings()
    apps = select_apps(resolve_apps(settings), app_names)
    types = [CampaignType.parse(name) for name in type_names] or list(CampaignType)
    engine = _engine(settings, passes=True)
    options = pass_options(
        settings, stats=stats, full_refresh=full_refresh, allow_mass_delete=allow_mass_delete
    )
    import_transport()
    set_up_ends()

    async def run(stop: asyncio.Event) -> list[PassResult]:
        with progress_for_terminal() as progress:
            return await sync_apps(
                engine, settings, apps, types, options, stop=stop, progress=progress
            )

    results = run_until_signalled(run, cancel_after=SYNC_CANCEL_SECONDS)
    for result in results:
        _say(describe_result(result))
    if any(result.misconfigured for result in results):
        sys.exit(EXIT_USAGE)  # no retry cures it (a role without the privileges it needs)
    if not all(result.ok for result in results):
        sys.exit(EXIT_FAILED)


@main.command(short_help="A pass every interval until SIGTERM/SIGINT/SIGHUP.")
@click.option(
    "--interval-seconds",
    type=click.FloatRange(min=1),
    envvar="CAMPAIGN_SYNC_INTERVAL_SECONDS",
    show_envvar=True,
    help="Seconds between passes of an app.  [default: 300]",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    envvar="CAMPAIGN_SYNC_METRICS_PORT",
    show_envvar=True,
    help="Port of /metrics, /healthz and /livez; 0 disables them.  [default: 9108]",
)
@click.option(
    "--metrics-host",
    envvar="CAMPAIGN_SYNC_METRICS_HOST",
    show_envvar=True,
    help="Interface of /metrics, /healthz, /livez; 0.0.0.0 for every one.  [default: 127.0.0.1]",
)
@settings_options
def serve(
    interval_seconds: float | None, metrics_port: int | None, metrics_host: str | None
) -> None:
    """Run a pass every interval until SIGTERM/SIGINT (or SIGHUP), then stop cleanly."""
    from campaign_sync.batch.client import import_transport
    from campaign_sync.config import resolve_apps
    from campaign_sync.service import serve as run_service

    flags = {
        "interval_seconds": interval_seconds,
        "metrics_port": metrics_port,
        "metrics_host": metrics_host,
    }
    ctx = click.get_current_context()
    given = {
        name: value
        for name, value in flags.items()
        if value is not None and not _from_environment(ctx, name)
    }
    settings = _settings(given)
    apps = resolve_apps(settings)
    own = _own_intervals(settings)
    if "interval_seconds" in given and own:
        logging.getLogger(__name__).warning(
            "--interval-seconds %g applies to the apps without an interval_seconds of their "
            "own in the config file; these keep theirs: %s",
            settings.interval_seconds,
            ", ".join(f"{name} ({seconds:g}s)" for name, seconds in own.items()),
        )
    engine = _engine(settings, passes=True)
    import_transport()
    set_up_ends()
    run_service(engine, settings, apps)


@main.command(short_help="Last pass, counts, cursor and staleness per app and type.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@settings_options
def status(as_json: bool) -> None:
    """Per app and type: last pass, its outcome and counts, the cursor, what is stale."""
    from campaign_sync.status import collect_status

    settings = _settings()
    engine = _engine(settings)
    report = collect_status(
        engine,
        detail_max_age_seconds=settings.detail_max_age_seconds,
        interval_seconds=settings.interval_seconds,
        app_intervals=_own_intervals(settings),
    )
    if as_json:
        click.echo(json.dumps([row.as_json() for row in report], indent=2))
        return
    from campaign_sync.progress import print_status_table

    print_status_table(report)


@main.command("update-in-app", short_help="Change an in-app campaign in Batch, safely.")
@click.argument("token")
@click.option("--app", "app_name", help="The app holding the campaign (needed with several).")
@click.option("--name", help="New campaign name (3 characters at least).")
@click.option("--live", type=click.Choice(["true", "false"]), help="Start or stop the campaign.")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="FIELD=JSON",
    help="Set a field; dots reach into objects: --set trigger.capping=3 (repeatable).",
)
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False),
    help="A JSON object of fields to change.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the JSON built from the last sync's copy of the campaign; ask and send nothing "
    "(a change made in Batch since shows only in a real run, as a conflict).",
)
@click.option("--force", is_flag=True, help="Send even if the campaign changed elsewhere.")
@_flag("--allow-unknown-field", "Send a field that in-app campaigns are not known to have.")
@settings_options
def update_in_app(
    token: str,
    app_name: str | None,
    name: str | None,
    live: str | None,
    assignments: tuple[str, ...],
    from_file: str | None,
    dry_run: bool,
    force: bool,
    allow_unknown_field: bool,
) -> None:
    """Change an in-app campaign through Batch's update endpoint, safely.

    Exit 0 when Batch accepted it (or on a dry run), 1 when refused, 2 for usage errors. A
    Ctrl-C or SIGTERM once the update is sent waits until it is recorded and said, then
    ends the command by that signal (a shell shows 130 or 143).
    """
    import asyncio

    import campaign_sync.writeback as writeback
    from campaign_sync.config import resolve_apps

    settings = _settings()
    apps = resolve_apps(settings)
    engine = _engine(settings)
    changes = writeback.parse_changes(
        name=name,
        live=live,
        assignments=assignments,
        from_file=from_file,
        allow_unknown_field=allow_unknown_field,
    )
    app = writeback.pick_app(apps, app_name)
    try:
        outcome = asyncio.run(
            writeback.update_in_app(
                engine,
                settings,
                app,
                token,
                changes,
                dry_run=dry_run,
                force=force,
                allow_unknown_field=allow_unknown_field,
            )
        )
    except writeback.UpdateNotRecorded as unrecorded:
        _say(f"campaign-sync: {unrecorded}", err=True)
        _act_on_held(unrecorded.stopped_by)
        sys.exit(EXIT_FAILED)
    if outcome.payload is not None and dry_run:
        _say(json_printable(json.dumps(outcome.payload, indent=2, ensure_ascii=False)))
    if outcome.conflict:
        _say(outcome.conflict, err=True)
    # stdout carries only the dry run's JSON; a refusal reads like every other error
    _say(outcome.message if outcome.ok else f"campaign-sync: {outcome.message}", err=True)
    _act_on_held(outcome.stopped_by)
    sys.exit(EXIT_OK if outcome.ok else EXIT_FAILED)


def _by_ctrl_c(error: BaseException) -> bool:
    """Whether `error` came of a KeyboardInterrupt (a Ctrl-C): as its cause, or raised
    while it was handled (click's confirm raises Abort `from None`, which keeps it as the
    context)."""
    seen: BaseException | None = error
    for _ in range(10):  # a chain is short; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _say(text: str, *, err: bool = False) -> None:
    """Print how the work ended (an update, a pass), and let the exit status say it even
    when no one reads: the Ctrl-C that ended `campaign-sync update-in-app ... | tee log`
    ends tee too, and click turned the write's BrokenPipeError into exit 1, read as a
    refused update although Batch took it (a review's find); a terminal closed under a
    `sync` (SIGHUP, then EIO on every write: POSIX `write`, "a hangup occurred") made a
    pass recorded `interrupted` exit 1 "unexpected error". The stream then writes to
    /dev/null, as Python's documentation advises for SIGPIPE (its `signal` module's
    notes). What a terminal would act on is shown escaped (`logs.printable`)."""
    _echo_unless_gone(printable_lines(text), err=err)


def _echo_unless_gone(text: str, *, err: bool = False) -> None:
    """`click.echo(text)`; when the stream's reader is gone (`logs.READER_GONE`), what is
    still written to it goes to /dev/null instead (each write, Python's flush at exit too,
    would fail again) and the command goes on to its own exit status."""
    try:
        click.echo(text, err=err)
    except OSError as error:
        if error.errno not in READER_GONE:
            raise
        with contextlib.suppress(OSError, ValueError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, (sys.stderr if err else sys.stdout).fileno())
            os.close(null)


def _act_on_held(signum: int | None) -> None:
    """End the process by a SIGINT or SIGTERM held while an update was recorded, now that
    its outcome is said (`signals.held_until_recorded`). Raised with Python's own SIGINT
    handler in place, a Ctrl-C became KeyboardInterrupt: exit 1 "aborted", read as a
    failed update although Batch took it and it was recorded, and a shell loop over
    several updates went on to the next one."""
    if signum is not None:
        end_by_signal(signum)


def end_by_signal(signum: int) -> NoReturn:
    """End the process by `signum` with its default action, output flushed first: a shell
    then sees a command killed by it (status 130 for SIGINT, 143 for SIGTERM) and stops
    the script that ran it, as for any program that cleans up before honouring a signal
    (the "wait and cooperative exit" convention, https://www.cons.org/cracauer/sigint.html).
    For every Ctrl-C that interrupts a command (click's Abort) and a signal held while an
    update was recorded; `sync` and `serve` stop cleanly instead (`signals`)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone: nothing to flush to
            stream.flush()
    die_by_signal(signum)


@main.command(short_help="Check settings, database and API keys; change nothing.")
@settings_options
def check() -> None:
    """Check the settings, the database (are migrations pending?) and, with one list call
    per app, that Batch accepts both keys. Writes nothing anywhere.

    Exit 0 when all is ready, 1 when Batch refused an app or could not be reached, 2 for bad
    configuration or a database that is unreachable or not migrated.
    """
    from campaign_sync.check import exit_code, run_checks
    from campaign_sync.config import resolve_apps

    settings = _settings()
    findings = run_checks(settings, resolve_apps(settings))
    for finding in findings:
        line = f"{'ok  ' if finding.ok else 'FAIL'}  {finding.subject}: {finding.message}"
        click.echo(printable_lines(line))
    sys.exit(exit_code(findings))


TYPE_CHOICE = click.Choice(["push", "in-app"])


@main.group(
    short_help="Show or reset the cursor of each app and type.", invoke_without_command=True
)
@click.pass_context
def state(ctx: click.Context) -> None:
    """The cursor of each app and type (`sync_state`): where its sweep stands."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def _refuse_unknown_apps(settings: Settings, names: Sequence[str], with_cursor: set[str]) -> None:
    """`--app` names neither configured nor holding a cursor (a typo): exit 2 naming both
    lists, as `sync --app` does, instead of 'no cursor yet'. An app no longer configured
    but with a cursor may still be shown (and reset)."""
    configured = [app.name for app in settings.apps] or (
        ["default"] if settings.batch_api_key else []
    )
    unknown = [name for name in names if name not in configured and name not in with_cursor]
    if unknown:
        raise Failure(
            f"no app named {', '.join(repr(n) for n in unknown)}; configured apps: "
            f"{', '.join(configured) or 'none'}; apps with a cursor: "
            f"{', '.join(sorted(with_cursor)) or 'none'}",
            EXIT_USAGE,
        )


@state.command("show", short_help="Where each app and type's sweep stands.")
@click.option("--app", "app_names", multiple=True, help="Only this app (repeatable).")
@click.option("--type", "type_names", type=TYPE_CHOICE, multiple=True, help="Only this type.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@settings_options
def state_show(app_names: tuple[str, ...], type_names: tuple[str, ...], as_json: bool) -> None:
    """What the cursor of each app and type holds."""
    from campaign_sync.db.cursor import read_cursors
    from campaign_sync.domain import CampaignType

    types = [CampaignType.parse(name) for name in type_names]
    settings = _settings()
    engine = _engine(settings)
    cursors = read_cursors(engine, app_names, types)
    _refuse_unknown_apps(settings, app_names, {c.app for c in read_cursors(engine, (), [])})
    if as_json:
        click.echo(json.dumps([cursor.as_json() for cursor in cursors], indent=2))
        return
    if not cursors:
        click.echo("no cursor yet: no pass has run for these apps and types")
    for cursor in cursors:
        where = (
            f"sweep {cursor.sweep_id} in progress, resumes at offset {cursor.sweep_offset}"
            if cursor.sweep_in_progress
            else f"sweep {cursor.sweep_id} done, the next pass starts a fresh sweep"
        )
        complete = cursor.last_complete_sweep_at
        click.echo(
            f"{cursor.app}/{cursor.campaign_type.label}: {where}; last complete sweep "
            f"{complete.isoformat(timespec='seconds') if complete else 'never'}"
        )


@state.command("reset", short_help="Make the next pass start a fresh sweep.")
@click.option("--app", "app_names", multiple=True, help="Only this app (repeatable).")
@click.option("--type", "type_names", type=TYPE_CHOICE, multiple=True, help="Only this type.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@settings_options
def state_reset(app_names: tuple[str, ...], type_names: tuple[str, ...], yes: bool) -> None:
    """Abandon the sweep in progress, so the next pass starts a fresh sweep from the top.

    Stored campaigns stay; `sync --full-refresh` also fetches every detail again.
    """
    from campaign_sync.db.cursor import CursorBusy, read_cursors, reset_cursors
    from campaign_sync.domain import CampaignType

    settings = _settings()
    engine = _engine(settings)
    types = [CampaignType.parse(name) for name in type_names]
    cursors = read_cursors(engine, app_names, types)
    _refuse_unknown_apps(settings, app_names, {c.app for c in read_cursors(engine, (), [])})
    if not cursors:
        click.echo("no cursor matches: nothing to reset")
        return
    names = ", ".join(f"{c.app}/{c.campaign_type.label}" for c in cursors)
    if not yes:
        click.confirm(
            f"Reset the cursor of {names}? Their next pass starts a fresh sweep, and the live "
            "API key they were synced with is forgotten",
            abort=True,
        )
    try:
        reset_cursors(engine, cursors)
    except CursorBusy as busy:
        raise Failure(str(busy)) from None
    click.echo(
        f"reset {names}: the next pass starts a fresh sweep, and records its live API key as "
        "the one their campaigns are synced with"
    )


class FiniteRange(click.FloatRange):
    """A number in a range, never nan or inf (click's FloatRange lets both through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


SHARE = FiniteRange(0, 1)
# The simulator and the demo build their data sets in memory before serving: 100,000 push
# campaigns took 14 s and about 300 MB (a review's measure), a million per type was still
# generating after 5 minutes at 6.5 GB, 2**63 never ended. 200,000 per type is twice
# what the benchmarks use (benchmarks/sync_memory.py) and starts within a minute.
MAX_GENERATED = 200_000
COUNT = click.IntRange(min=0, max=MAX_GENERATED)
# The demo renames, deletes and creates campaigns among the first 21 push and 6 in-app ones
# (demo._change_some): fewer ended in an IndexError.
DEMO_COUNT = click.IntRange(min=25, max=MAX_GENERATED)
SECONDS = FiniteRange(min=0)


def _shown(name: str, default: Any, text: str, **kwargs: Any) -> Callable[[F], F]:
    """An option whose default `--help` shows."""
    return click.option(name, default=default, show_default=True, help=text, **kwargs)


@main.command(short_help="Serve a local stand-in for the Batch API.")
@_shown("--host", "127.0.0.1", "Interface to listen on.")
@_shown("--port", 8787, "TCP port.", type=click.IntRange(0, 65535))
@_shown("--api-key", "SIMULATOR_API_KEY", "Live API key it accepts.")
@_shown("--rest-api-key", "SIMULATOR_REST_KEY", "REST API key it accepts.")
@_shown("--push", 500, "Push campaigns to generate.", type=COUNT)
@_shown("--in-app", 300, "In-app campaigns to generate.", type=COUNT)
@_shown("--seed", 1, "Seed of the generated data.", type=int)
@click.option(
    "--now",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    help="The UTC moment the data is dated around (same seed and --now, same data).  "
    "[default: the current time]",
)
@_shown("--latency-ms", 0.0, "Added to every answer.", type=SECONDS)
@click.option(
    "--rate-limit",
    type=FiniteRange(min=0, min_open=True),
    help="Requests/s before answering 429 (token bucket).  [default: no limit]",
)
@_shown("--burst", 10, "Token bucket size.", type=click.IntRange(min=1))
@click.option("--fault-429", default=0.0, type=SHARE, help="Share of requests answered 429 (0-1).")
@click.option("--fault-500", default=0.0, type=SHARE, help="Share answered 500 (0-1).")
@click.option("--fault-503", default=0.0, type=SHARE, help="Share answered 503 (0-1).")
@click.option(
    "--fault-truncated", default=0.0, type=SHARE, help="Share answered 200 with cut JSON (0-1)."
)
@click.option("--fault-hang", default=0.0, type=SHARE, help="Share that hang (0-1).")
@_shown("--hang-seconds", 60.0, "How long a --fault-hang request hangs.", type=SECONDS)
@click.option("--retry-after", help="Retry-After header value to send with 429s.")
@click.option(
    "--churn-every",
    type=FiniteRange(min=0, min_open=True),
    help="Seconds between random campaign changes.  [default: no churn]",
)
def simulate(**options: Any) -> None:
    """Serve a local stand-in for the Batch API (no Batch account needed)."""
    from campaign_sync.simulator import Simulator, SimulatorKnobs, SimulatorServer

    knobs = SimulatorKnobs(
        latency_seconds=options["latency_ms"] / 1000,
        rate_limit_per_second=options["rate_limit"],
        rate_limit_burst=options["burst"],
        fault_429=options["fault_429"],
        fault_500=options["fault_500"],
        fault_503=options["fault_503"],
        fault_truncated=options["fault_truncated"],
        fault_hang=options["fault_hang"],
        hang_seconds=options["hang_seconds"],
        retry_after=options["retry_after"],
        churn_every_seconds=options["churn_every"],
    )
    simulator = Simulator(
        api_key=options["api_key"],
        rest_api_key=options["rest_api_key"],
        push=options["push"],
        in_app=options["in_app"],
        seed=options["seed"],
        knobs=knobs,
        now=options["now"],
    )
    try:
        server = SimulatorServer(simulator, host=options["host"], port=options["port"])
    except OSError as error:
        where = f"{options['host']}:{options['port']}"
        raise Failure(f"cannot listen on {where}: {error.strerror}", EXIT_USAGE) from None
    # The keys shell-quoted, so that the line pastes as it reads (a key with a space or a
    # `;` broke it), and shown escaped (a review's find: raw ESC reached the terminal).
    import shlex

    api_key, rest_key = (shlex.quote(options[name]) for name in ("api_key", "rest_api_key"))
    click.echo(
        printable_lines(
            f"Batch simulator on {server.url} ({options['push']} push, {options['in_app']} "
            f"in-app campaigns)\n"
            f"  export BATCH_API_BASE_URL={server.url} BATCH_API_KEY={api_key} "
            f"BATCH_REST_API_KEY={rest_key} CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS=0.2\n"
            f"  request counters: {server.url}/_sim/stats   (Ctrl-C stops)"
        ),
        err=True,
    )
    server.run()


@main.command(short_help="Try it: simulator + sync into a local database.")
@_shown("--push", 400, "Push campaigns in the data set.", type=DEMO_COUNT)
@_shown("--in-app", 250, "In-app campaigns in the data set.", type=DEMO_COUNT)
@settings_options
def demo(push: int, in_app: int) -> None:
    """Simulator + sync into the embedded default database (or DATABASE_URL), then a summary."""
    from campaign_sync.demo import run_demo

    settings = _settings(own_simulator=True)
    _refuse_unusable_sqlite_path(settings.database_url)
    run_demo(push=push, in_app=in_app, settings=settings)


if __name__ == "__main__":
    main()
