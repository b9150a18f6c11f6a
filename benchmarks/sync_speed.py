"""Targets 1 and 2 of issue 14: the initial pass and the unchanged pass, as CLI runs
against PostgreSQL, each beside a bare httpx client making the same requests in the same
run.

1. Initial pass of `--push` + `--in-app` campaigns at `--latency-ms`: wall <= 1.0x the bare
   client's (`_bare_client.py`, default transport, same concurrency) and <= 1.3x the
   latency bound; CPU <= 1.2x the bare client's.
2. Unchanged pass right after: no row inserted, updated or deleted in `campaigns` or its
   children (`pg_stat_user_tables`), no detail call, and wall <= 1.5x a bare script that
   imports httpx, SQLAlchemy and psycopg and makes the same list calls.

For information, no target: the initial pass again in a fresh database with the slow
start off (`CAMPAIGN_SYNC_RATE_START_PER_SECOND=200`) beside another bare client run, which
shows what an app's first pass pays for the slow start that target 4 needs.

The latency bound is what the requests cost with nothing but latency: each type's list
pages are a sequential chain (the types run side by side), and the details go
`concurrency` at a time: max(list calls per type) x latency + detail calls x latency /
concurrency. An unchanged pass has no details, so its bound is the longest chain.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _harness import (
    Result,
    campaign_sync,
    load_average,
    print_results,
    run_child,
    simulator,
    sync_env,
    throwaway_database,
)
from sqlalchemy import create_engine, text

BARE_CLIENT = str(Path(__file__).with_name("_bare_client.py"))
WRITTEN_TABLES = (
    "campaigns",
    "messages",
    "message_actions",
    "triggers",
    "targeting",
    "campaign_versions",
)


def table_writes(database_url: str) -> dict[str, int]:
    """Rows inserted + updated + deleted so far, per table (PostgreSQL's statistics)."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        rows = conn.execute(
            text(
                "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
                " WHERE relname = ANY(:names)"
            ),
            {"names": list(WRITTEN_TABLES)},
        ).all()
    engine.dispose()
    return {str(name): int(count) for name, count in rows}


def pass_calls(database_url: str) -> list[tuple[int, int]]:
    """(list calls, detail calls) of each type's latest run."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT DISTINCT ON (campaign_type) list_calls, detail_calls FROM sync_runs"
                " ORDER BY campaign_type, id DESC"
            )
        ).all()
    engine.dispose()
    return [(int(lists), int(details)) for lists, details in rows]


def measure(push: int, in_app: int, latency_ms: float, concurrency: int) -> list[Result]:
    """Run both passes and their references; the results for targets 1 and 2."""
    latency = latency_ms / 1000
    options = ("--push", str(push), "--in-app", str(in_app), "--latency-ms", str(latency_ms))
    with simulator(*options) as url, throwaway_database() as database_url:
        env = sync_env(database_url, url, CAMPAIGN_SYNC_CONCURRENCY=str(concurrency))
        run_child(campaign_sync("migrate"), env)
        bare_args = [sys.executable, "-P", BARE_CLIENT, url, "--concurrency", str(concurrency)]
        bare = run_child(bare_args)
        initial = run_child(campaign_sync("sync"), env)
        calls = pass_calls(database_url)
        bound = (
            max(lists for lists, _ in calls) * latency
            + sum(details for _, details in calls) * latency / concurrency
        )
        before = table_writes(database_url)
        unchanged = run_child(campaign_sync("sync"), env)
        after = table_writes(database_url)
        unchanged_calls = pass_calls(database_url)
        bare_lists = run_child([*bare_args, "--lists-only", "--import-db"])
    # The same initial pass without the slow start (what an app's first pass costs when
    # no limit is to be learned; target 4 needs the slow start: docs/performance.md).
    with simulator(*options) as url, throwaway_database() as database_url:
        env = sync_env(
            database_url, url, CAMPAIGN_SYNC_CONCURRENCY=str(concurrency),
            CAMPAIGN_SYNC_RATE_START_PER_SECOND="200",
        )  # fmt: skip
        run_child(campaign_sync("migrate"), env)
        bare_again = run_child([*bare_args[:3], url, *bare_args[4:]])
        unpaced = run_child(campaign_sync("sync"), env)
    requests = int(bare.stdout)
    writes = {name: after.get(name, 0) - before.get(name, 0) for name in WRITTEN_TABLES}
    moved = {name: count for name, count in writes.items() if count}
    cores = os.cpu_count() or 1
    note = (
        f"{requests} requests; load {load_average()}; the machine's {cores} cores busy"
        f" {bare.machine_busy:.0%} during the bare client ({bare.machine_cpu:.2f} s of CPU"
        f" in all), {initial.machine_busy:.0%} during the pass ({initial.machine_cpu:.2f} s)"
    )
    return [
        Result("1", "initial pass wall vs bare client", initial.wall, bare.wall, "s",
               max_ratio=1.0, note=note),
        Result("1", "initial pass wall vs latency bound", initial.wall, bound, "s",
               max_ratio=1.3),
        Result("1", "initial pass CPU vs bare client", initial.cpu, bare.cpu, "s",
               max_ratio=1.2),
        Result("1", "initial pass wall, no slow start, vs bare client", unpaced.wall,
               bare_again.wall, "s", note="CAMPAIGN_SYNC_RATE_START_PER_SECOND=200: for"
               f" information, no target; CPU {unpaced.cpu:.2f} s vs {bare_again.cpu:.2f} s"),
        Result("2", "unchanged pass: rows written to campaigns and children",
               sum(writes.values()), None, "rows", max_value=0,
               note=f"per table: {moved or 'none'}"),
        Result("2", "unchanged pass: detail calls",
               sum(details for _, details in unchanged_calls), None, "calls", max_value=0),
        Result("2", "unchanged pass wall vs bare list script", unchanged.wall, bare_lists.wall,
               "s", max_ratio=1.5, note=f"{int(bare_lists.stdout)} list calls"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--push", type=int, default=1000)
    parser.add_argument("--in-app", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    results = measure(args.push, args.in_app, args.latency_ms, args.concurrency)
    sys.exit(0 if print_results(results) else 1)


if __name__ == "__main__":
    main()
