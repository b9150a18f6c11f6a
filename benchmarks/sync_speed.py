"""An initial pass of 1,000 push + 1,000 in-app campaigns at 20 ms latency, against the
latency bound at the default concurrency (target: within 1.3 x), then an unchanged pass
(target: list calls only, about N/95 + 1 per type).

The latency bound is what the requests cost if `concurrency` of them were always in
flight: (list calls + detail calls) x latency / concurrency. The simulator runs in its own
process. Set DATABASE_URL to measure against PostgreSQL (default: a temporary SQLite file).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from _simulator import start_simulator
from pydantic import SecretStr

from campaign_sync.config import Settings
from campaign_sync.db.migrate import upgrade
from campaign_sync.db.session import make_engine
from campaign_sync.runner import sync_apps

TARGET_RATIO = 1.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--push", type=int, default=1000)
    parser.add_argument("--in-app", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    simulator, base_url = start_simulator(
        "--push", str(args.push), "--in-app", str(args.in_app), "--latency-ms", str(args.latency_ms)
    )
    workdir = tempfile.mkdtemp()
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/bench.db"
    try:
        upgrade(url)
        settings = Settings(
            database_url=url,
            batch_api_key="KEY",
            batch_rest_api_key=SecretStr("SECRET"),
            batch_api_base_url=base_url,
            backoff_min_seconds=0.5,
        )
        from campaign_sync.config import resolve_apps

        apps = resolve_apps(settings)
        engine = make_engine(url)
        latency = args.latency_ms / 1000
        for label in ("initial", "unchanged"):
            started, cpu_started = time.monotonic(), time.process_time()
            results = asyncio.run(sync_apps(engine, settings, apps))
            elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
            lists = sum(r.counts.list_calls for r in results)
            details = sum(r.counts.detail_calls for r in results)
            bound = (lists + details) * latency / settings.concurrency
            statuses = ",".join(r.status for r in results)
            print(
                f"{label} pass: {elapsed:.2f}s, {lists} list + {details} detail calls "
                f"({statuses}); latency bound {bound:.2f}s; ratio {elapsed / bound:.2f} "
                f"(target <= {TARGET_RATIO}); our CPU {cpu:.2f}s"
            )
            if label == "unchanged":
                expected = args.push // 95 + 1 + args.in_app // 95 + 1
                print(
                    f"unchanged pass: {details} detail calls (target 0), {lists} list calls "
                    f"(target <= {expected})"
                )
        engine.dispose()
    finally:
        simulator.terminate()
        simulator.wait()


if __name__ == "__main__":
    main()
