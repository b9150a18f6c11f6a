"""The load: transform + plan + write of fetched details, page by page (100 per page, as a
pass does), against psycopg's COPY of the same documents into one jsonb column (the
reference: what storing the bytes costs on this machine, measured in the same run).
Target (issue #14, target 5): load <= 5 x COPY.

The details come from the simulator's data generator in-process (half push, half in-app);
no HTTP. Both run against a throwaway PostgreSQL database, created and dropped here, on
the server of DATABASE_URL (default: postgresql+psycopg://root@127.0.0.1:5432/postgres).

    python benchmarks/load_speed.py                      # 100,000 details
    python benchmarks/load_speed.py --campaigns 10000    # quicker
    python benchmarks/load_speed.py --profile load.prof  # cProfile of the load part
"""

from __future__ import annotations

import argparse
import cProfile
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
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
SERVER = "postgresql+psycopg://root@127.0.0.1:5432/postgres"

Documents = dict[CampaignType, list[dict[str, Any]]]


def generate(campaigns: int) -> Documents:
    """`campaigns` details, half of each type, the same for the same count."""
    counts = {CampaignType.PUSH: campaigns - campaigns // 2, CampaignType.IN_APP: campaigns // 2}
    return {
        kind: list(generate_store(kind, count, SEED).details().values())
        for kind, count in counts.items()
    }


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A new empty database on that server (its SQLAlchemy URL), dropped afterwards."""
    server = make_url(server_url)
    name = f"campaign_sync_load_{os.getpid()}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database "{name}" with (force)')


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--campaigns", type=int, default=100_000)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the load here")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL") or SERVER
    documents = generate(args.campaigns)
    load_before = os.getloadavg()
    with throwaway_database(server) as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            reference = copy_seconds(url, documents)
            if args.profile:
                profiler = cProfile.Profile()
                measured, cpu = profiler.runcall(load_seconds, engine, documents)
                profiler.dump_stats(args.profile)
            else:
                measured, cpu = load_seconds(engine, documents)
        finally:
            engine.dispose()
    ratio = measured / reference
    load_after = os.getloadavg()
    print(f"details loaded: {args.campaigns:,} ({PAGE} per page, half per type)")
    print(f"load average: {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"measured (transform + plan + write): {measured:.2f} s ({cpu:.2f} s CPU here)")
    print(f"reference (COPY into one jsonb column): {reference:.2f} s")
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"ratio: {ratio:.1f} x (target <= {TARGET_RATIO:.0f} x) {verdict}")


if __name__ == "__main__":
    main()
