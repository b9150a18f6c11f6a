"""Two passes under a server-side rate limit (issue #14, target 4).

The simulator runs in its own process with a token bucket of 50 req/s and a burst of 10,
1,000 push + 1,000 in-app campaigns and a small latency; the client keeps Batch's real 5 s
floor after a 429. Pass 1 is an initial pass (empty database, nothing learned); pass 2 is a
`--full-refresh` pass on the same database, so it makes the same requests again, paced from
its first request at the rate pass 1 learned. The reference is what the limit makes
unavoidable: the answered requests / 50 req/s.

Targets: pass 1 wall <= 1.15 x reference, at most 5 responses of 429, no pass failed;
pass 2: no 429 at all (and the same wall target). Set DATABASE_URL to use PostgreSQL
(default: a temporary SQLite file); the database must be a throwaway one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

import httpx
from _simulator import start_simulator
from pydantic import SecretStr

from campaign_sync.config import Settings, resolve_apps
from campaign_sync.db.migrate import upgrade
from campaign_sync.db.pacing import load_learned_rate
from campaign_sync.db.session import make_engine
from campaign_sync.runner import pass_options, sync_apps

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--push", type=int, default=1000)
    parser.add_argument("--in-app", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    args = parser.parse_args()
    simulator, base_url = start_simulator(
        "--push", str(args.push), "--in-app", str(args.in_app),
        "--latency-ms", str(args.latency_ms),
        "--rate-limit", str(LIMIT_PER_SECOND), "--burst", str(BURST),
    )  # fmt: skip
    workdir = tempfile.mkdtemp()
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/bench.db"
    failed = False
    try:
        upgrade(url)
        settings = Settings(
            database_url=url,
            batch_api_key="KEY",
            batch_rest_api_key=SecretStr("SECRET"),
            batch_api_base_url=base_url,
            backoff_min_seconds=5.0,  # Batch's real floor, not the local stand-in's shortcut
        )
        apps = resolve_apps(settings)
        engine = make_engine(url)
        time.sleep(1.0)  # the server's bucket starts full, as after any quiet moment
        for label, full_refresh in (("pass 1 (initial)", False), ("pass 2 (full refresh)", True)):
            answered_before, too_many_before = server_counts(base_url)
            started = time.monotonic()
            options = pass_options(settings, full_refresh=full_refresh)
            results = asyncio.run(sync_apps(engine, settings, apps, options=options))
            elapsed = time.monotonic() - started
            answered, too_many = server_counts(base_url)
            requests, too_many = answered - answered_before, too_many - too_many_before
            failures = sum(r.status != "succeeded" for r in results)
            reference = requests / LIMIT_PER_SECOND
            ratio = elapsed / reference
            max_429 = MAX_429_FIRST_PASS if label.startswith("pass 1") else 0
            ok = ratio <= TARGET_RATIO and too_many <= max_429 and failures == 0
            failed = failed or not ok
            learned = load_learned_rate(engine, apps[0].name)
            print(
                f"{label}: learned rate {learned.requests_per_second if learned else 0:.1f} "
                f"req/s; wall {elapsed:.2f}s; reference {requests} requests / "
                f"{LIMIT_PER_SECOND:g} = {reference:.2f}s; ratio {ratio:.2f} "
                f"(target <= {TARGET_RATIO}); 429 responses {too_many} (target <= {max_429}); "
                f"failed passes {failures} (target 0): {'PASS' if ok else 'FAIL'}"
            )
            time.sleep(1.0)
        engine.dispose()
    finally:
        simulator.terminate()
        simulator.wait()
    print(f"load average: {os.getloadavg()[0]:.2f}; overall: {'FAIL' if failed else 'PASS'}")


if __name__ == "__main__":
    main()
