"""The `campaign-sync` command line: parses, calls, prints. No business logic here.

Errors become one line on stderr naming what to fix; exit codes follow the contract.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.batch.errors import BatchError
from campaign_sync.config import (
    ConfigError,
    Settings,
    load_settings,
    resolve_apps,
    select_apps,
)
from campaign_sync.db.migrate import SchemaNotCurrent, ensure_current, upgrade
from campaign_sync.db.session import database_problem, make_engine, masked_url
from campaign_sync.engine import PassResult
from campaign_sync.logs import setup_logging
from campaign_sync.service import run_until_signalled

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
F = TypeVar("F", bound=Callable[..., Any])


class Failure(Exception):
    """A command's own refusal: message for stderr, and the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def friendly_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Failure as failure:
            _die(str(failure), failure.code)
        except (ConfigError, SchemaNotCurrent) as error:
            _die(str(error), EXIT_USAGE)
        except ArgumentError as error:
            _die(f"DATABASE_URL is not a valid SQLAlchemy URL: {error}", EXIT_USAGE)
        except (OperationalError, ProgrammingError) as error:
            _die(f"database problem ({_database_hint()}): {database_problem(error)}", EXIT_USAGE)
        except BatchError as error:
            _die(str(error), EXIT_FAILED)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as error:
            if os.environ.get("CAMPAIGN_SYNC_DEBUG"):
                raise
            _die(
                f"unexpected error: {type(error).__name__}: {error} "
                "(set CAMPAIGN_SYNC_DEBUG=1 to see the traceback)",
                EXIT_FAILED,
            )

    return wrapper  # type: ignore[return-value]


def _die(message: str, code: int) -> None:
    click.echo(f"campaign-sync: {message}", err=True)
    sys.exit(code)


def _database_hint() -> str:
    url = os.environ.get("DATABASE_URL")
    return f"DATABASE_URL={masked_url(url)}" if url else "the default sqlite:///campaign_sync.db"


def _settings() -> Settings:
    settings = load_settings()
    setup_logging(settings.log_format, settings.log_level)
    return settings


def _engine(settings: Settings) -> Engine:
    engine = make_engine(settings.database_url)
    ensure_current(engine)
    return engine


def describe_result(result: PassResult) -> str:
    counts = result.counts
    line = (
        f"{result.app}/{result.campaign_type.label}: {result.status}"
        if result.status != "skipped"
        else f"{result.app}/{result.campaign_type.label}: skipped (another process holds it)"
    )
    if result.status in ("succeeded", "failed", "interrupted"):
        line += (
            f" - {counts.campaigns_inserted} inserted, {counts.campaigns_updated} updated, "
            f"{counts.campaigns_unchanged} unchanged, {counts.campaigns_deleted} deleted, "
            f"{counts.warnings} warnings ({counts.list_calls} list calls, "
            f"{counts.detail_calls} detail calls, {counts.retries} retries) "
            f"in {result.seconds:.1f}s"
        )
    if counts.stats_calls:
        line += f"; stats: {counts.stats_calls} calls, {counts.stats_rows_written} rows written"
    if result.error:
        line += f"\n  error: {result.error}"
    return line


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="campaign-sync")
def main() -> None:
    """Sync Batch (batch.com) push and in-app campaigns into PostgreSQL or SQLite."""


@main.command()
@friendly_errors
def migrate() -> None:
    """Bring the database schema to the newest revision (same as `alembic upgrade head`)."""
    settings = _settings()
    logging.getLogger("alembic").setLevel(logging.INFO)
    upgrade(settings.database_url)
    click.echo(f"database schema is current ({masked_url(settings.database_url)})")


@main.command()
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
@friendly_errors
def sync(
    app_names: tuple[str, ...],
    type_names: tuple[str, ...],
    full_refresh: bool,
    allow_mass_delete: bool,
    stats: bool,
) -> None:
    """One pass over every configured app and both campaign types, then exit.

    Exit 0 when all succeeded, 1 when some app/type failed (the others still synced),
    2 for bad configuration or usage.
    """
    from campaign_sync.progress import progress_for_terminal
    from campaign_sync.runner import pass_options, sync_apps

    settings = _settings()
    apps = select_apps(resolve_apps(settings), app_names)
    types = [CampaignType.parse(name) for name in type_names] or list(CampaignType)
    engine = _engine(settings)
    options = pass_options(
        settings, stats=stats, full_refresh=full_refresh, allow_mass_delete=allow_mass_delete
    )

    async def run(stop: asyncio.Event) -> list[PassResult]:
        with progress_for_terminal() as progress:
            return await sync_apps(
                engine, settings, apps, types, options, stop=stop, progress=progress
            )

    results = run_until_signalled(run)
    for result in results:
        click.echo(describe_result(result))
    if not all(result.ok for result in results):
        sys.exit(EXIT_FAILED)


@main.command()
@friendly_errors
def serve() -> None:
    """Run a pass every interval until SIGTERM/SIGINT, then stop cleanly."""
    from campaign_sync.service import serve as run_service

    settings = _settings()
    apps = resolve_apps(settings)
    engine = _engine(settings)
    run_service(engine, settings, apps)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def status(as_json: bool) -> None:
    """Per app and type: last pass, its outcome and counts, the cursor, what is stale."""
    from campaign_sync.status import collect_status

    settings = _settings()
    engine = _engine(settings)
    report = collect_status(
        engine,
        detail_max_age_seconds=settings.detail_max_age_seconds,
        interval_seconds=settings.interval_seconds,
    )
    if as_json:
        click.echo(json.dumps([row.as_json() for row in report], indent=2))
        return
    from campaign_sync.progress import print_status_table

    print_status_table(report)


@main.command("update-in-app")
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
@click.option("--dry-run", is_flag=True, help="Print the JSON that would be sent; send nothing.")
@click.option("--force", is_flag=True, help="Send even if the campaign changed elsewhere.")
@friendly_errors
def update_in_app(
    token: str,
    app_name: str | None,
    name: str | None,
    live: str | None,
    assignments: tuple[str, ...],
    from_file: str | None,
    dry_run: bool,
    force: bool,
) -> None:
    """Change an in-app campaign through Batch's update endpoint, safely.

    Exit 0 when Batch accepted it (or on a dry run), 1 when refused, 2 for usage errors.
    """
    import campaign_sync.writeback as writeback

    settings = _settings()
    apps = resolve_apps(settings)
    engine = _engine(settings)
    try:
        changes = writeback.parse_changes(
            name=name, live=live, assignments=assignments, from_file=from_file
        )
        app = writeback.pick_app(apps, app_name)
        outcome = asyncio.run(
            writeback.update_in_app(
                engine, settings, app, token, changes, dry_run=dry_run, force=force
            )
        )
    except writeback.UsageError as error:
        raise Failure(str(error), EXIT_USAGE) from None
    if outcome.payload is not None and dry_run:
        click.echo(json.dumps(outcome.payload, indent=2, ensure_ascii=False))
    if outcome.conflict:
        click.echo(outcome.conflict, err=True)
    click.echo(outcome.message, err=True)  # stdout carries only the dry run's JSON
    sys.exit(EXIT_OK if outcome.ok else EXIT_FAILED)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--api-key", default="SIMULATOR_API_KEY", show_default=True)
@click.option("--rest-api-key", default="SIMULATOR_REST_KEY", show_default=True)
@click.option("--push", default=500, show_default=True, help="Push campaigns to generate.")
@click.option("--in-app", default=300, show_default=True, help="In-app campaigns to generate.")
@click.option("--seed", default=1, show_default=True)
@click.option("--latency-ms", default=0.0, show_default=True, help="Added to every answer.")
@click.option("--rate-limit", type=float, help="Requests/s before answering 429 (token bucket).")
@click.option("--burst", default=10, show_default=True, help="Token bucket size.")
@click.option("--fault-429", default=0.0, help="Share of requests answered 429.")
@click.option("--fault-500", default=0.0, help="Share answered 500.")
@click.option("--fault-503", default=0.0, help="Share answered 503.")
@click.option("--fault-truncated", default=0.0, help="Share answered 200 with cut JSON.")
@click.option("--fault-hang", default=0.0, help="Share that hang for --hang-seconds.")
@click.option("--hang-seconds", default=60.0, show_default=True)
@click.option("--retry-after", help="Retry-After header value to send with 429s.")
@click.option("--churn-every", type=float, help="Seconds between random campaign changes.")
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
    )
    try:
        server = SimulatorServer(simulator, host=options["host"], port=options["port"])
    except OSError as error:
        _die(f"cannot listen on {options['host']}:{options['port']}: {error.strerror}", EXIT_USAGE)
    click.echo(
        f"Batch simulator on {server.url} ({options['push']} push, {options['in_app']} in-app "
        f"campaigns)\n"
        f"  export BATCH_API_BASE_URL={server.url} BATCH_API_KEY={options['api_key']} "
        f"BATCH_REST_API_KEY={options['rest_api_key']} CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS=0.2\n"
        f"  request counters: {server.url}/_sim/stats   (Ctrl-C stops)",
        err=True,
    )
    server.run()


@main.command()
@click.option("--push", default=400, show_default=True, help="Push campaigns in the data set.")
@click.option("--in-app", default=250, show_default=True, help="In-app campaigns in the data set.")
@friendly_errors
def demo(push: int, in_app: int) -> None:
    """Simulator + sync into the embedded default database, then a summary."""
    from campaign_sync.demo import run_demo

    run_demo(push=push, in_app=in_app)


if __name__ == "__main__":
    main()
