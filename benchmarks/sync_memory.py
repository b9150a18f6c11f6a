"""Target 6 of issue 14: the peak memory (RSS) of a `campaign-sync sync` process stays
<= 150 MB at `--campaigns` (default 100,000, half per type) and <= 1.25x its peak at a
tenth as many. A pass streams page by page, so its memory should not grow with the
number of campaigns beyond the sweep's set of seen tokens.

Each size gets its own simulator process and throwaway PostgreSQL database; the sync is a
real child process whose own peak RSS is read with os.wait4.
"""

from __future__ import annotations

import argparse
import sys

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

TARGET_MB = 150.0
GROWTH = 1.25


def peak_mb(campaigns: int) -> tuple[float, float]:
    """Peak RSS in MB and wall seconds of an initial `sync` of `campaigns` campaigns."""
    push = campaigns // 2
    options = ("--push", str(push), "--in-app", str(campaigns - push))
    with simulator(*options) as url, throwaway_database() as database_url:
        env = sync_env(database_url, url)
        run_child(campaign_sync("migrate"), env)
        run = run_child(campaign_sync("sync"), env)
    return run.peak_mb, run.wall


def measure(campaigns: int) -> list[Result]:
    """The memory results at `campaigns` and at a tenth of it."""
    small, small_wall = peak_mb(campaigns // 10)
    large, large_wall = peak_mb(campaigns)
    note = f"{campaigns:,} synced in {large_wall:.0f} s, {campaigns // 10:,} in {small_wall:.0f} s"
    return [
        Result("6", f"peak RSS at {campaigns:,} campaigns", large, TARGET_MB, "MB",
               max_ratio=1.0, note=f"{note}; load {load_average()}"),
        Result("6", f"peak RSS growth from {campaigns // 10:,}", large, small, "MB",
               max_ratio=GROWTH),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--campaigns", type=int, default=100_000)
    results = measure(parser.parse_args().campaigns)
    sys.exit(0 if print_results(results) else 1)


if __name__ == "__main__":
    main()
