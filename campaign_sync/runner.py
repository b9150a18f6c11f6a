"""One sync over the configured apps: a client per app, both campaign types at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy import Engine

from campaign_sync.batch.client import BatchClient, ClientOptions, ResponseHook
from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.batch.ratelimit import RatePolicy
from campaign_sync.batch.retry import RetryBudget
from campaign_sync.config import ResolvedApp, Settings
from campaign_sync.engine import PassOptions, PassResult, Progress, SyncPass
from campaign_sync.logs import register_secret
from campaign_sync.push_stats import StatsPolicy


def pass_options(
    settings: Settings,
    *,
    stats: bool = False,
    full_refresh: bool = False,
    allow_mass_delete: bool = False,
) -> PassOptions:
    """A pass's options from the settings, plus the command line's flags; `stats=True`
    turns stats on for this pass even when `CAMPAIGN_SYNC_STATS` is off."""
    policy = StatsPolicy(settings.stats_window_days, settings.stats_max_age_seconds)
    return PassOptions(
        full_refresh=full_refresh,
        allow_mass_delete=allow_mass_delete,
        detail_max_age_seconds=settings.detail_max_age_seconds,
        lock_lease_seconds=settings.lock_lease_seconds,
        stats=policy if stats or settings.stats else None,
    )


def client_options(settings: Settings, app: ResolvedApp) -> ClientOptions:
    return ClientOptions(
        base_url=settings.batch_api_base_url,
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
        concurrency=app.concurrency,
        rate=RatePolicy(
            backoff_min_seconds=settings.backoff_floor(),
            backoff_max_seconds=max(settings.backoff_max_seconds, settings.backoff_floor()),
            increase_per_second=settings.rate_increase_per_second,
        ),
        retry=RetryBudget(
            max_attempts=settings.retry_max_attempts,
            max_seconds=settings.retry_max_seconds,
            backoff_initial_seconds=settings.retry_backoff_initial_seconds,
            backoff_max_seconds=settings.retry_backoff_max_seconds,
        ),
    )


def make_client(
    settings: Settings,
    app: ResolvedApp,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_response: ResponseHook | None = None,
) -> BatchClient:
    rest_key = app.rest_api_key.get_secret_value()
    register_secret(rest_key)
    register_secret(app.api_key, keep_last=4)
    return BatchClient(
        app=app.name,
        api_key=app.api_key,
        rest_api_key=rest_key,
        options=client_options(settings, app),
        transport=transport,
        on_response=on_response,
    )


async def sync_app(
    db: Engine,
    settings: Settings,
    app: ResolvedApp,
    types: Sequence[CampaignType],
    options: PassOptions,
    **pass_kwargs: Any,
) -> list[PassResult]:
    transport = pass_kwargs.pop("transport", None)
    on_response = pass_kwargs.pop("on_response", None)
    on_client = pass_kwargs.pop("on_client", None)
    async with make_client(settings, app, transport=transport, on_response=on_response) as client:
        if on_client is not None:
            on_client(client)
        passes = [SyncPass(db, client, t, options, **pass_kwargs) for t in types]
        return list(await asyncio.gather(*(p.run() for p in passes)))


async def sync_apps(
    db: Engine,
    settings: Settings,
    apps: Sequence[ResolvedApp],
    types: Sequence[CampaignType] = tuple(CampaignType),
    options: PassOptions | None = None,
    *,
    stop: asyncio.Event | None = None,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    on_response: ResponseHook | None = None,
) -> list[PassResult]:
    """Every app at once, each with both types; one app failing never stops the others."""
    options = options or pass_options(settings)
    write_lock = asyncio.Lock() if db.dialect.name == "sqlite" else None
    per_app = await asyncio.gather(
        *(
            sync_app(
                db,
                settings,
                app,
                types,
                options,
                stop=stop,
                progress=progress,
                write_lock=write_lock,
                transport=transport,
                on_response=on_response,
            )
            for app in apps
        )
    )
    return [result for results in per_app for result in results]
