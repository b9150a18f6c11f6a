"""Two passes under a server-side rate limit (issue #14, target 4).

The simulator runs in its own process with a token bucket of 50 req/s and a burst of 10,
1,000 push + 1,000 in-app campaigns and a small latency; the client keeps Batch's real 5 s
floor after a 429. Pass 1 is an initial pass (empty database, nothing learned); pass 2 is a
`--full-refresh` pass on the same database, so it makes the same requests again, paced from
its first request at the rate pass 1 learned. The reference is what the limit makes
unavoidable: the answered requests / 50 req/s.

Targets: pass 1 wall <= 1.15 x reference, at most 5 responses of 429, no pass failed;
pass 2: no 429 at all (and the same wall target). The passes run in this process against
a throwaway PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

import httpx
from _harness import (
    API_KEY,
    REST_KEY,
    Result,
    load_average,
    print_results,
    simulator,
    throwaway_database,
)
from pydantic import SecretStr
from sqlalchemy import Engine

from campaign_sync.config import Settings, resolve_apps
from campaign_sync.db.migrate import upgrade
from campaign_sync.db.pacing import load_learned_rate
from campaign_sync.db.session import make_engine
from campaign_sync.runner import pass_options, sync_apps
from campaign_sync.sync_pass import PassResult

LIMIT_PER_SECOND = 50.0
BURST = 10
TARGET_RATIO = 1.15
MAX_429_FIRST_PASS = 5


def server_counts(base_url: str) -> tuple[int, int]:
    """(answered requests that were not 429, responses of 429) the simulator counted."""
    by_route = httpx.get(f"{base_url}/_sim/stats").json()["by_route"]
    too_many = sum(statuses.get("429", 0) for statuses in by_route.values())
    answered = sum(sum(statuses.values()) for statuses in by_route.values())
    return answered - too_many, too_many


def timed_pass(
    engine: Engine, url: str, base_url: str, *, floor: float, full_refresh: bool
) -> tuple[float, list[PassResult], float]:
    """One pass of the app against the simulator at `base_url`, as a scheduled one runs:
    its wall seconds, its outcome, and the rate stored after it (req/s, 0 when none).
    `floor`: the wait after a 429 (Batch's is 5 s)."""
    settings = Settings(
        database_url=url,
        batch_api_key=API_KEY,
        batch_rest_api_key=SecretStr(REST_KEY),
        batch_api_base_url=base_url,
        backoff_min_seconds=floor,
    )
    apps = resolve_apps(settings)
    pass_settings = pass_options(settings, full_refresh=full_refresh)
    started = time.monotonic()
    outcome = asyncio.run(sync_apps(engine, settings, apps, options=pass_settings))
    elapsed = time.monotonic() - started
    learned = load_learned_rate(engine, apps[0].name)
    return elapsed, outcome, learned.requests_per_second if learned else 0.0


def measure(push: int, in_app: int, latency_ms: float = 2.0) -> list[Result]:
    """Both passes' results: wall against requests / 50, 429s, failed passes."""
    options = (
        "--push", str(push), "--in-app", str(in_app), "--latency-ms", str(latency_ms),
        "--rate-limit", str(LIMIT_PER_SECOND), "--burst", str(BURST),
    )  # fmt: skip
    results: list[Result] = []
    logging.getLogger("campaign_sync").setLevel(logging.ERROR)  # the 429s are counted below
    with simulator(*options) as base_url, throwaway_database() as url:
        upgrade(url)
        engine = make_engine(url)
        time.sleep(1.0)  # the server's bucket starts full, as after any quiet moment
        for label, full_refresh in (("pass 1 (initial)", False), ("pass 2 (full refresh)", True)):
            answered_before, too_many_before = server_counts(base_url)
            # Batch's real floor after a 429, not the local stand-in's shortcut
            elapsed, outcome, rate = timed_pass(
                engine, url, base_url, floor=5.0, full_refresh=full_refresh
            )
            answered, too_many = server_counts(base_url)
            requests, too_many = answered - answered_before, too_many - too_many_before
            note = f"{requests} requests, learned {rate:.1f} req/s; load {load_average()}"
            results += [
                Result("4", f"{label}: wall vs requests / 50 per s", elapsed,
                       requests / LIMIT_PER_SECOND, "s", max_ratio=TARGET_RATIO, note=note),
                Result("4", f"{label}: responses of 429", too_many, None, "",
                       max_value=MAX_429_FIRST_PASS if full_refresh is False else 0),
                Result("4", f"{label}: failed passes",
                       sum(r.status != "succeeded" for r in outcome), None, "", max_value=0),
            ]  # fmt: skip
            time.sleep(1.0)
        engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--push", type=int, default=1000)
    parser.add_argument("--in-app", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    args = parser.parse_args()
    results = measure(args.push, args.in_app, args.latency_ms)
    sys.exit(0 if print_results(results) else 1)


if __name__ == "__main__":
    main()
