"""Passes under a rate limit beside which the API also fails 10% of requests (issue #14,
target 4's learned pace amid failures).

One database, one simulator: a limit of 20 req/s (burst 5) and 10% of requests answered
500, for six passes of one app (the first initial, then `--full-refresh`), a 0.2 s floor
after a 429 (Batch's is 5 s: with it each 429 costs 5 s of the whole app). Printed: each
pass's 429s, the rate stored after it, its wall against requests / 20; target: at most
one 429 a pass on average after the first (target 4 asks none of a second pass under
the same limit; here random 500s beside it blur what a 429 says).

When a 429 amid failures left the rate wholly alone (d1d6809..7e0271c), a pace that had
climbed a little past the limit stayed there, and the stored rate went on climbing:
18.1 -> 21.2 req/s over passes 1-5, with 0, 0, 0, 7, 22 x 429 (29, and rising).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from _harness import Result, load_average, print_results, simulator, throwaway_database
from rate_limit import server_counts, timed_pass

from campaign_sync.db.migrate import upgrade
from campaign_sync.db.session import make_engine

LIMIT = 20.0
NOW = "2026-11-01T00:00:00"


def measure(push: int, in_app: int, passes: int, fault_500: float) -> list[Result]:
    """Per pass: its 429s and the rate it stored; the passes after the first together."""
    options = (
        "--push", str(push), "--in-app", str(in_app), "--latency-ms", "2", "--now", NOW,
        "--rate-limit", str(LIMIT), "--burst", "5", "--fault-500", str(fault_500),
    )  # fmt: skip
    logging.getLogger("campaign_sync").setLevel(logging.CRITICAL)
    results: list[Result] = []
    later_429 = 0
    with simulator(*options) as base_url, throwaway_database() as url:
        upgrade(url)
        engine = make_engine(url)
        time.sleep(1.0)
        for index in range(passes):
            answered_before, too_many_before = server_counts(base_url)
            elapsed, _, rate = timed_pass(engine, url, base_url, floor=0.2, full_refresh=index > 0)
            answered, too_many = server_counts(base_url)
            requests, too_many = answered - answered_before, too_many - too_many_before
            if index > 0:
                later_429 += too_many
            results.append(
                Result("4f", f"pass {index}: 429s; stored {rate:.2f} req/s", too_many, None, "",
                       note=f"{requests} answered, {elapsed:.1f} s = "
                       f"{elapsed / (requests / LIMIT):.2f}x requests / {LIMIT:g}")
            )  # fmt: skip
        engine.dispose()
    results.append(
        Result("4f", f"passes 1-{passes - 1}: 429s in all", later_429, None, "",
               max_value=passes - 1, note=f"load {load_average()}")
    )  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--push", type=int, default=300)
    parser.add_argument("--in-app", type=int, default=300)
    parser.add_argument("--passes", type=int, default=6)
    parser.add_argument("--fault-500", type=float, default=0.10)
    args = parser.parse_args()
    results = measure(args.push, args.in_app, args.passes, args.fault_500)
    sys.exit(0 if print_results(results) else 1)


if __name__ == "__main__":
    main()
