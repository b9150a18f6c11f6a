"""`campaign-sync demo`: the whole product in a minute, with no Batch account.

Starts the simulator in-process, syncs into the embedded default database (or
DATABASE_URL), changes a few campaigns, syncs again to show only those were fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import time
from collections.abc import Iterator, Sequence
from urllib.parse import urlparse

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.engine import make_url

from campaign_sync.config import ResolvedApp, Settings, load_settings
from campaign_sync.db.migrate import upgrade
from campaign_sync.db.models import campaigns, messages, sync_runs, sync_state, sync_warnings
from campaign_sync.db.session import make_engine, masked_url
from campaign_sync.domain import CampaignType
from campaign_sync.logs import setup_logging
from campaign_sync.outcome import PassResult, RunCounts
from campaign_sync.runner import pass_options, sync_apps
from campaign_sync.simulator import Simulator, SimulatorKnobs, SimulatorServer
from campaign_sync.terminal import progress_for_terminal

# The demo's rows, erased at each demo's start, go under an app name that no configured
# app can have (config.APP_NAME allows letters, digits, _ . -): a real app named 'demo'
# synced into the same DATABASE_URL was erased with the demo's rows before.
DEMO_APP = "(demo)"
DEMO_API_KEY = "DEMO_LIVE_API_KEY"
DEMO_REST_KEY = "DEMO_REST_KEY"


def _forget_previous_demo(engine: Engine) -> None:
    """The demo owns the app `DEMO_APP`; start it afresh each time."""
    with engine.begin() as conn:
        for table in (sync_warnings, campaigns, sync_runs, sync_state):
            conn.execute(delete(table).where(table.c.app == DEMO_APP))


def _pass(engine: Engine, settings: Settings, app: ResolvedApp) -> tuple[list[PassResult], float]:
    started = time.monotonic()

    async def run() -> list[PassResult]:
        with progress_for_terminal() as progress:
            return await sync_apps(
                engine,
                settings,
                [app],
                options=pass_options(settings, stats=True),
                progress=progress,
            )

    return asyncio.run(run()), time.monotonic() - started


DEMO_COUNTERS = ("list_calls", "detail_calls", "stats_calls", "campaigns_inserted",
                 "campaigns_updated", "campaigns_deleted")  # fmt: skip


def _calls_table(title: str, results: Sequence[PassResult], seconds: float) -> Table:
    table = Table(title=f"{title} ({seconds:.1f}s)")
    table.add_column("type")
    for name in DEMO_COUNTERS:
        table.add_column(RunCounts.label(name), justify="right")
    for result in results:
        counts = result.counts.as_dict()
        table.add_row(result.campaign_type.label, *(str(counts[name]) for name in DEMO_COUNTERS))
    return table


@contextlib.contextmanager
def _no_proxy_for(host: str) -> Iterator[None]:
    """While the demo runs, requests to `host` (its own simulator) go through no proxy: a
    proxy elsewhere (HTTP_PROXY on a company network) would reach its own loopback, and
    the demo was refused as plain http through another host. NO_PROXY and no_proxy are
    both read (batch/proxies.py), lower-case first; both are restored after."""
    before = {name: os.environ.get(name) for name in ("no_proxy", "NO_PROXY")}
    for name, value in before.items():
        os.environ[name] = f"{host},{value}" if value else host
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_demo(*, push: int = 400, in_app: int = 250, settings: Settings | None = None) -> None:
    settings = settings or load_settings()
    setup_logging("text", "WARNING")
    console = Console()
    simulator = Simulator(
        api_key=DEMO_API_KEY,
        rest_api_key=DEMO_REST_KEY,
        push=push,
        in_app=in_app,
        seed=2024,
        knobs=SimulatorKnobs(latency_seconds=0.002),
    )
    with (
        SimulatorServer(simulator) as server,
        _no_proxy_for(urlparse(server.url).hostname or "127.0.0.1"),
    ):
        settings = settings.model_copy(
            update={
                "batch_api_base_url": server.url,
                "backoff_min_seconds": 0.2,
                "metrics_port": 0,
            }
        )
        app = ResolvedApp(
            name=DEMO_APP,
            api_key=DEMO_API_KEY,
            rest_api_key=SecretStr(DEMO_REST_KEY),
            interval_seconds=settings.interval_seconds,
            concurrency=settings.concurrency,
        )
        console.print(
            f"[bold]campaign-sync demo[/bold]: a local Batch simulator at {server.url} with "
            f"{push} push and {in_app} in-app campaigns, synced into "
            f"{masked_url(settings.database_url)}"
        )
        upgrade(settings.database_url, schema=settings.db_schema)
        engine = make_engine(settings.database_url, schema=settings.db_schema)
        _forget_previous_demo(engine)

        first, first_seconds = _pass(engine, settings, app)
        console.print(_calls_table("First pass: everything is new", first, first_seconds))
        _print_samples(console, engine)
        _print_open_rates(console, engine)

        changed = _change_some(simulator)
        console.print(
            f"\nChanged in Batch meanwhile: {changed['renamed']} renamed, {changed['created']} "
            f"created, {changed['deleted']} deleted."
        )
        second, second_seconds = _pass(engine, settings, app)
        console.print(
            _calls_table("Second pass: only what changed is fetched", second, second_seconds)
        )
        fetched = sum(r.counts.detail_calls for r in second)
        console.print(
            f"{fetched} detail call(s) instead of {push + in_app}: unchanged campaigns cost "
            "only their share of a list page."
        )
        _print_next_steps(console, settings.database_url, settings.db_schema)
        engine.dispose()
    failed = [r for r in (*first, *second) if r.status != "succeeded"]
    if failed:
        raise RuntimeError(f"demo pass failed: {failed[0].error}")


def _change_some(simulator: Simulator) -> dict[str, int]:
    push_store = simulator.store(CampaignType.PUSH)
    in_app_store = simulator.store(CampaignType.IN_APP)
    push_tokens = push_store.tokens()
    in_app_tokens = in_app_store.tokens()
    push_store.rename(push_tokens[3], "Renamed in the dashboard")
    push_store.rename(push_tokens[10], "Black Friday 🎁 (renamed)")
    in_app_store.rename(in_app_tokens[5], "New onboarding survey")
    push_store.create()
    push_store.delete(push_tokens[20])
    return {"renamed": 3, "created": 1, "deleted": 1}


def _print_samples(console: Console, engine: Engine) -> None:
    c = campaigns.c
    with engine.connect() as conn:
        by_type = conn.execute(
            select(c.campaign_type, func.count()).where(c.app == DEMO_APP).group_by(c.campaign_type)
        ).all()
        rows = conn.execute(
            select(c.campaign_type, c.name, c.live, c.created_date, func.count(messages.c.position))
            .select_from(campaigns.outerjoin(messages, messages.c.campaign_id == c.id))
            .where(c.app == DEMO_APP)
            .group_by(c.id)
            .order_by(c.created_date.desc())
            .limit(5)
        ).all()
        warnings = conn.execute(
            select(func.count()).where(sync_warnings.c.app == DEMO_APP)
        ).scalar_one()
    console.print("Stored: " + ", ".join(f"{n} {CampaignType(t).label}" for t, n in by_type))
    table = Table(title="Newest campaigns")
    for heading in ("type", "name", "live", "created (UTC)", "messages"):
        table.add_column(heading)
    for campaign_type, name, live, created, message_count in rows:
        table.add_row(
            CampaignType(campaign_type).label,  # in-app, as people read it
            name or "",
            str(live),
            created.strftime("%Y-%m-%d %H:%M") if created else "",
            str(message_count),
        )
    console.print(table)
    console.print(
        f"{warnings} bad value(s) kept out of typed columns (see sync_warnings), e.g. Batch's "
        "own impossible date 2018-02-29."
    )


def _print_open_rates(console: Console, engine: Engine) -> None:
    with engine.connect() as conn:
        campaigns_with_stats, sent, opened, ab_tests = conn.execute(
            text(
                "select count(*), sum(sent), sum(direct_open + influenced_open), "
                "count(sent_a) from v_push_performance_total where app = :app"
            ),
            {"app": DEMO_APP},
        ).one()
        best = conn.execute(
            text(
                "select name, open_rate from v_push_performance_total "
                "where app = :app and sent >= 1000 and open_rate is not null "
                "order by open_rate desc limit 1"
            ),
            {"app": DEMO_APP},
        ).first()
    if not campaigns_with_stats or not sent:
        console.print("No push statistics yet (no campaign sent in the last 30 days).")
        return
    line = (
        f"Open rates: {campaigns_with_stats} push campaigns with stats "
        f"({ab_tests} A/B tests), {opened / sent:.1%} opened overall"
    )
    if best is not None:
        line += f"; best: {best.name!r} at {best.open_rate:.1%}"
    console.print(line + " (see the view v_push_performance_total).")


def _print_next_steps(console: Console, database_url: str, schema: str = "public") -> None:
    # The demo's own rows only: into a DATABASE_URL that also holds real apps, counting
    # every app's campaigns mixed them in (a review's find).
    query = (
        "select campaign_type, count(*) as campaigns, sum(live) as live "
        f"from v_campaigns where app = '{DEMO_APP}' group by campaign_type;"
    )
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        command = f'sqlite3 {shlex.quote(url.database)} "{query}"'
    else:
        pg_query = query.replace("sum(live)", "count(*) filter (where live)")
        # psql takes libpq's URL (no +psycopg), and the views live in the schema setting.
        libpq = url.set(drivername="postgresql")
        target = (  # never print a password: then the variable holding it
            shlex.quote(libpq.render_as_string(hide_password=False))
            if libpq.password is None
            else '"$DATABASE_URL"'
        )
        where = f"PGOPTIONS='-c search_path={schema}' " if schema != "public" else ""
        command = f'{where}psql {target} -c "{pg_query}"'
    console.print("\nTry next:")
    console.print(f"  {command}", markup=False, soft_wrap=True)
    console.print("  campaign-sync status", markup=False)
    console.print(
        "  The views v_campaigns, v_messages, v_campaign_changes... are described in "
        "docs/schema.md; docs/queries.sql holds questions analysts ask.",
        markup=False,
    )
