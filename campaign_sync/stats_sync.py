"""The stats step of a push pass: after the campaigns are committed, fetch the statistics
of the campaigns `stats_due` selects, through the app's client (same rate gate, retry
policy and 429 pause as the other calls), and write them a batch at a time.

Resumable like the sweep: each batch commits its campaigns' `fetched_at`, so a pass that
stops goes on next time with the campaigns not fetched yet (the others are not due).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from campaign_sync.batch.client import GONE, BatchClient
from campaign_sync.batch.endpoints import UnsendableToken
from campaign_sync.batch.errors import AuthenticationInvalid, BatchError
from campaign_sync.db.locks import Guard
from campaign_sync.db.stats import StatsFetch, stats_candidates, write_stats
from campaign_sync.db.types import utcnow
from campaign_sync.domain import shown_token
from campaign_sync.outcome import RunCounts
from campaign_sync.push_stats import StatsCandidate, StatsPolicy, stats_due, transform_stats

log = logging.getLogger(__name__)

BATCH_SIZE = 10  # campaigns whose stats are written in one transaction (a stop waits for one)


async def sync_push_stats(
    engine: Engine,
    client: BatchClient,
    *,
    run_id: int,
    policy: StatsPolicy,
    counts: RunCounts,
    stop: asyncio.Event,
    guard: Guard | None = None,
    write_lock: asyncio.Lock | None = None,
) -> bool:
    """Fetch and store the due campaigns' stats, adding to the pass's `counts` (stats calls,
    rows written, failures, warnings) as batches commit, so the caller holds what was done
    even when this raises. Returns False when a stop came before every due campaign was
    fetched. Raises `AuthenticationInvalid`; any other failed request is recorded
    (`outcome` `failed`) and tried again next pass."""
    app = client.app
    with_stats = without_stats = 0

    def candidates() -> list[StatsCandidate]:
        with engine.connect() as conn:
            return stats_candidates(conn, app)

    now = utcnow()
    due = [c for c in await asyncio.to_thread(candidates) if stats_due(c, now=now, policy=policy)]
    log.info("stats: %d push campaign(s) due", len(due))
    for start in range(0, len(due), BATCH_SIZE):
        if stop.is_set():
            return False
        batch = due[start : start + BATCH_SIZE]
        answers = await asyncio.gather(
            *(client.push_stats(c.campaign_token, counts=counts) for c in batch),
            return_exceptions=True,
        )
        fetches: list[StatsFetch] = []
        for candidate, answer in zip(batch, answers, strict=True):
            if isinstance(answer, AuthenticationInvalid):
                raise answer
            if isinstance(answer, BatchError | UnsendableToken):
                log.warning(
                    "stats of campaign %s not loaded: %s",
                    shown_token(candidate.campaign_token),
                    answer,
                )
                fetches.append(StatsFetch(candidate, "failed", error=str(answer)))
                counts.stats_failures += 1
            elif isinstance(answer, BaseException):
                raise answer
            elif answer is GONE:
                fetches.append(StatsFetch(candidate, "no_stats"))
                without_stats += 1
            else:
                fetches.append(StatsFetch(candidate, "ok", stats=transform_stats(answer)))
                with_stats += 1

        def write(fetches: list[StatsFetch] = fetches) -> tuple[int, int]:
            with engine.begin() as conn:
                if guard is not None:
                    guard(conn)
                return write_stats(conn, app, run_id, fetches, utcnow())

        if write_lock is None:
            rows, warnings = await asyncio.to_thread(write)
        else:
            async with write_lock:
                rows, warnings = await asyncio.to_thread(write)
        counts.stats_rows_written += rows
        counts.warnings += warnings
    log.info(
        "stats: %d campaign(s) with stats, %d without yet; %s",
        with_stats,
        without_stats,
        counts.summary().partition("; stats: ")[2],
    )
    return True


__all__ = ["sync_push_stats"]
