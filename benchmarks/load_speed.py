"""The load: transform + plan + write of fetched details, page by page (100 per page, as a
pass does), against psycopg's COPY of the same documents into one jsonb column (the
reference: what storing the bytes costs on this machine, measured in the same run).
Target (issue #14, target 5): load <= 5 x COPY.

The details come from the simulator's data generator in-process (half push, half in-app);
no HTTP. Both run against a throwaway PostgreSQL database (benchmarks/_harness.py).

    python benchmarks/load_speed.py                      # 100,000 details
    python benchmarks/load_speed.py --campaigns 10000    # quicker
    python benchmarks/load_speed.py --profile load.prof  # cProfile of the load part
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import time
from typing import Any

import psycopg
from _harness import Result, load_average, print_results, throwaway_database
from psycopg.types.json import Jsonb
from sqlalchemy import Engine, make_url

from campaign_sync.db.loader import stored_campaigns, write_page
from campaign_sync.db.migrate import upgrade
from campaign_sync.db.session import make_engine
from campaign_sync.db.types import utcnow
from campaign_sync.domain import CampaignType
from campaign_sync.plan import PageLoad, plan_page
from campaign_sync.simulator.data import generate_store, list_entry

TARGET_RATIO = 5.0
PAGE = 100  # campaigns per list page (Batch's list limit, as a pass reads it)
SEED = 14

Documents = dict[CampaignType, list[dict[str, Any]]]


def generate(campaigns: int) -> Documents:
    """`campaigns` details, half of each type, the same for the same count."""
    counts = {CampaignType.PUSH: campaigns - campaigns // 2, CampaignType.IN_APP: campaigns // 2}
    return {
        kind: list(generate_store(kind, count, SEED).details().values())
        for kind, count in counts.items()
    }


def copy_seconds(url: str, documents: Documents) -> float:
    """Seconds to COPY every document into a temporary table with one jsonb column."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        conn.execute("create temporary table documents (detail jsonb)")
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy("copy documents (detail) from stdin") as copy:
            for details in documents.values():
                for detail in details:
                    copy.write_row((Jsonb(detail),))
        conn.commit()
        return time.perf_counter() - started


def load_seconds(engine: Engine, documents: Documents) -> tuple[float, float]:
    """Seconds (wall, and this process's CPU) for what a pass does with fetched details,
    page by page: read the stored state of the page's tokens, plan (transform, diff),
    write (campaigns, children, versions, warnings, seen marks)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for campaign_type, details in documents.items():
        for offset in range(0, len(details), PAGE):
            page = details[offset : offset + PAGE]
            entries = {d["campaign_token"]: list_entry(campaign_type, d) for d in page}
            with engine.connect() as conn:
                stored = stored_campaigns(conn, "bench", campaign_type, list(entries))
            load = PageLoad(
                app="bench",
                campaign_type=campaign_type,
                run_id=None,
                sweep_id=1,
                now=utcnow(),
                list_entries=entries,
                details={d["campaign_token"]: d for d in page},
                offset=offset,
                stored=stored,
            )
            write_page(engine, plan_page(load))
    return time.perf_counter() - started, time.process_time() - cpu_started


def measure(campaigns: int, profile: str | None = None) -> list[Result]:
    """Target 5's result: the load of `campaigns` details against their COPY."""
    documents = generate(campaigns)
    with throwaway_database() as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            reference = copy_seconds(url, documents)
            if profile:
                profiler = cProfile.Profile()
                measured, cpu = profiler.runcall(load_seconds, engine, documents)
                profiler.dump_stats(profile)
            else:
                measured, cpu = load_seconds(engine, documents)
        finally:
            engine.dispose()
    note = f"{PAGE} per page, half per type; {cpu:.1f} s CPU here; load {load_average()}"
    return [
        Result("5", f"transform + upsert {campaigns:,} details vs COPY into one jsonb column",
               measured, reference, "s", max_ratio=TARGET_RATIO, note=note),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--campaigns", type=int, default=100_000)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the load here")
    args = parser.parse_args()
    sys.exit(0 if print_results(measure(args.campaigns, args.profile)) else 1)


if __name__ == "__main__":
    main()
