"""One sync over the configured apps: a client per app, both campaign types at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
from sqlalchemy import Engine

from campaign_sync.batch.client import BatchClient, ClientHook, ClientOptions
from campaign_sync.batch.ratelimit import LearnedRate, RatePolicy
from campaign_sync.batch.retry import RetryBudget
from campaign_sync.config import ResolvedApp, Settings
from campaign_sync.db.pacing import load_learned_rate, save_learned_rate
from campaign_sync.domain import CampaignType
from campaign_sync.push_stats import StatsPolicy
from campaign_sync.sync_pass import (
    PassOptions,
    PassResult,
    ProgressSink,
    SyncPass,
    progress_hook,
)


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
        refresh_budget=settings.detail_refresh_per_pass or None,
        stats=policy if stats or settings.stats else None,
    )


def client_options(
    settings: Settings, app: ResolvedApp, learned_rate: LearnedRate | None = None
) -> ClientOptions:
    """The app's client options; `learned_rate`: where its rate gate starts (see
    `db.pacing`), None for a slow start."""
    return ClientOptions(
        base_url=settings.batch_api_base_url,
        allow_insecure_http=settings.allow_insecure_http,
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
        concurrency=app.concurrency,
        learned_rate=learned_rate,
        rate=RatePolicy(
            backoff_min_seconds=settings.backoff_floor(),
            backoff_max_seconds=max(settings.backoff_max_seconds, settings.backoff_floor()),
            increase_per_second=settings.rate_increase_per_second,
            slow_start_rate=settings.rate_start_per_second,
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
    hooks: Sequence[ClientHook] = (),
    learned_rate: LearnedRate | None = None,
    options: ClientOptions | None = None,
) -> BatchClient:
    """The app's client; `hooks` hear its events (see `batch.client.ClientEvent`);
    `learned_rate`: where its rate gate starts; `options`: in place of the settings' own
    (`client_options`), for a command with its own limits (`check`)."""
    rest_key = app.rest_api_key.get_secret_value()
    return BatchClient(
        app=app.name,
        api_key=app.api_key,
        rest_api_key=rest_key,
        options=options or client_options(settings, app, learned_rate),
        transport=transport,
        hooks=hooks,
    )


async def sync_app(
    engine: Engine,
    settings: Settings,
    app: ResolvedApp,
    types: Sequence[CampaignType],
    options: PassOptions,
    *,
    stop: asyncio.Event | None = None,
    progress: ProgressSink | None = None,
    write_lock: asyncio.Lock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    hooks: Sequence[ClientHook] = (),
) -> list[PassResult]:
    """One app's passes, one per type, sharing the app's client (its rate gate and 429
    pause); `hooks` hear the client's events, and so does `progress`. The client paces
    from the rate the app's earlier passes learned (`api_pacing`), and stores what this
    one learned when the passes end, whatever their outcome, once a request was sent."""
    listeners = [*hooks, progress_hook(progress)] if progress is not None else list(hooks)
    learned = await asyncio.to_thread(load_learned_rate, engine, app.name)  # off the loop
    client = make_client(settings, app, transport=transport, hooks=listeners, learned_rate=learned)
    client.gate.stop = stop  # a stop ends 429 pauses and retry backoffs at once
    async with client:
        passes = [
            SyncPass(
                engine, client, t, options, stop=stop, progress=progress, write_lock=write_lock
            )
            for t in types
        ]
        try:
            return list(await asyncio.gather(*(p.run() for p in passes)))
        finally:
            # Not when nothing was sent: nothing was learned, and a pass that failed on a
            # locked database waited the lock timeout a second time to store it.
            if client.gate.sent_any:
                await asyncio.to_thread(save_learned_rate, engine, app.name, client.gate.learned())


async def sync_apps(
    engine: Engine,
    settings: Settings,
    apps: Sequence[ResolvedApp],
    types: Sequence[CampaignType] = tuple(CampaignType),
    options: PassOptions | None = None,
    *,
    stop: asyncio.Event | None = None,
    progress: ProgressSink | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    hooks: Sequence[ClientHook] = (),
) -> list[PassResult]:
    """Every app at once, each with both types; one app failing never stops the others."""
    options = options or pass_options(settings)
    write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
    per_app = await asyncio.gather(
        *(
            sync_app(
                engine,
                settings,
                app,
                types,
                options,
                stop=stop,
                progress=progress,
                write_lock=write_lock,
                transport=transport,
                hooks=hooks,
            )
            for app in apps
        )
    )
    return [result for results in per_app for result in results]
