"""Running passes and reading the database back, for engine and service tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select, text

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.db.models import campaigns, message_actions, messages, targeting, triggers
from campaign_sync.db.session import make_engine
from campaign_sync.runner import pass_options, sync_apps
from campaign_sync.simulator import Simulator, SimulatorServer
from campaign_sync.sync_pass import PassResult
from tests.conftest import make_app, make_settings

BOOKKEEPING = {"id", "first_seen_at", "last_seen_at", "detail_fetched_at", "updated_at"}


def run_sync(
    url: str,
    server: SimulatorServer,
    types: Sequence[CampaignType] = tuple(CampaignType),
    *,
    max_age: float = 86400,
    full_refresh: bool = False,
    allow_mass_delete: bool = False,
    stats: bool = False,
    **settings: Any,
) -> list[PassResult]:
    engine = make_engine(url)
    chosen = make_settings(server.url, url, detail_max_age_seconds=max_age, **settings)
    options = pass_options(
        chosen, stats=stats, full_refresh=full_refresh, allow_mass_delete=allow_mass_delete
    )
    try:
        return asyncio.run(sync_apps(engine, chosen, [make_app()], types, options))
    finally:
        engine.dispose()


def by_type(results: Sequence[PassResult]) -> dict[CampaignType, PassResult]:
    return {result.campaign_type: result for result in results}


def content_snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's content keyed by token, without ids and timestamps of bookkeeping."""
    snapshot: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        tokens = dict(conn.execute(select(campaigns.c.id, campaigns.c.campaign_token)).all())
        columns = [c for c in campaigns.c if c.name not in BOOKKEEPING]
        snapshot["campaigns"] = sorted(
            tuple(repr(v) for v in row) for row in conn.execute(select(*columns))
        )
        for table in (messages, message_actions, triggers, targeting):
            rows = conn.execute(select(table)).mappings().all()
            snapshot[table.name] = sorted(
                tuple(
                    repr(tokens[row["campaign_id"]]) if key == "campaign_id" else repr(value)
                    for key, value in row.items()
                )
                for row in rows
            )
    return snapshot


def count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def wait_until_counted(engine: Engine, sql: str, seconds: float = 60) -> None:
    """Poll `sql` (a count) every 20 ms until it is not 0, for at most `seconds`: the
    moment a process under test has reached some point. The caller asserts what follows."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not count(engine, sql):
        time.sleep(0.02)


def hold_lists_until_a_pass_is_skipped(simulator: Simulator, url: str) -> Engine:
    """Make the simulator hold every list call until some pass has been skipped (recorded
    in sync_state.last_skipped_at): two processes started together then surely overlap,
    however loaded the machine. Returns the engine it polls with (dispose it after)."""
    engine = make_engine(url)
    query = text("select count(*) from sync_state where last_skipped_at is not null")

    async def hold(route: str, request: object) -> None:
        deadline = time.monotonic() + 60
        while route.startswith("list") and time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(query).scalar_one():
                    return
            await asyncio.sleep(0.05)

    simulator.hooks.append(hold)
    return engine
