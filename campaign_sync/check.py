"""`campaign-sync check`: are the settings, the database and each app's keys ready for a pass?

Reads only: one list call per app (limit 1) and the database's schema revision. It never
creates a database file, takes no lock and writes no row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy.exc import SQLAlchemyError

from campaign_sync.batch.errors import AuthenticationInvalid, BatchError, RetryBudgetExhausted
from campaign_sync.config import ResolvedApp, Settings
from campaign_sync.db.migrate import (
    KNOWN_REVISIONS,
    SchemaNotCurrent,
    UnrecordedSchema,
    current_revision,
    ensure_current,
    head_revision,
)
from campaign_sync.db.session import make_engine, masked_url, missing_sqlite_file
from campaign_sync.domain import CampaignType
from campaign_sync.runner import make_client

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


def check_database(database_url: str, schema: str | None = None) -> Finding:
    subject = f"database {masked_url(database_url)}"
    missing = missing_sqlite_file(database_url)
    if missing is not None:
        return Finding(subject, f"{missing} does not exist: run campaign-sync migrate", USAGE)
    try:
        current = current_revision(database_url, schema)
    except SQLAlchemyError as error:
        cause = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        return Finding(subject, f"cannot connect: {cause}", USAGE)
    head = head_revision()
    if current == head:
        return Finding(subject, f"reachable, schema at revision {head} (the newest)")
    if current is None or current not in KNOWN_REVISIONS:
        engine = make_engine(database_url, schema=schema)
        try:
            ensure_current(engine)  # names the fix for a dump to adopt or a newer revision
        except UnrecordedSchema as unrecorded:
            return Finding(subject, str(unrecorded), USAGE)
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


async def check_app(
    settings: Settings, app: ResolvedApp, *, transport: httpx.AsyncBaseTransport | None = None
) -> Finding:
    subject = f"app '{app.name}'"
    # A refused key answers at once (never retried); a 500, a 503, a cut answer or a
    # timeout is Batch's or the network's passing trouble, not the app's: retried a little.
    brief = settings.model_copy(
        update={
            "retry_max_attempts": min(settings.retry_max_attempts, CHECK_ATTEMPTS),
            "retry_max_seconds": min(settings.retry_max_seconds, CHECK_MAX_SECONDS),
        }
    )
    try:
        async with make_client(brief, app, transport=transport) as client:
            await client.list_campaigns(CampaignType.PUSH, limit=1)
    except BatchError as error:
        cause = error.last_error if isinstance(error, RetryBudgetExhausted) else error
        if isinstance(cause, AuthenticationInvalid):
            detail = f" ({cause.summary}: {cause.batch_message})" if cause.batch_message else ""
            return Finding(subject, f"{rejected_key(cause, app)}{detail}", FAILED)
        return Finding(subject, str(cause), FAILED)
    return Finding(subject, "both keys accepted (one list call)")


def run_checks(
    settings: Settings,
    apps: Sequence[ResolvedApp],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Finding]:
    findings = [
        Finding("settings", f"{len(apps)} app(s): {', '.join(app.name for app in apps)}"),
        check_database(settings.database_url, settings.db_schema),
    ]

    async def all_apps() -> list[Finding]:
        return list(
            await asyncio.gather(*(check_app(settings, a, transport=transport) for a in apps))
        )

    return findings + asyncio.run(all_apps())


def exit_code(findings: Sequence[Finding]) -> int:
    """The worst: 2 when the configuration or the database is not ready, else 1 if an app
    failed, else 0."""
    return max((finding.code for finding in findings), default=OK)


__all__ = ["Finding", "check_app", "check_database", "exit_code", "run_checks"]
