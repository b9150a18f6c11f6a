"""Target 3 of issue 14, start-up: `campaign-sync sync`'s CPU <= 1.3x that of
`python -c "import httpx, sqlalchemy, psycopg"`, and `--help`/`--version` under 0.3 s.

`sync` is measured whole, as an operator runs it: against a simulator with no campaigns
and a migrated throwaway PostgreSQL database, so the pass itself is four list calls and
its bookkeeping, and what remains is start-up: imports, settings, the engine, the schema
check. Each figure is the median of `--runs` child processes (CPU = user + system, from
the child's own resource usage); `sync` and its reference run in turn. The package is
compiled to bytecode first, as an installed copy is (`_harness.compile_package`).
"""

from __future__ import annotations

import argparse
import statistics
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

REFERENCE_SECONDS = 0.3  # --help and --version: what a person notices as a pause
BARE_IMPORTS = [sys.executable, "-P", "-c", "import httpx, sqlalchemy, psycopg"]


def median_run(
    args: list[str], runs: int, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Median wall and median CPU seconds of `runs` children (one warm-up run first)."""
    run_child(args, env)
    children = [run_child(args, env) for _ in range(runs)]
    return statistics.median(c.wall for c in children), statistics.median(c.cpu for c in children)


def interleaved_cpu(
    reference: list[str], measured: list[str], runs: int, env: dict[str, str]
) -> tuple[float, float]:
    """Median CPU seconds of `reference` and of `measured` (with `env`), run in turn `runs`
    times each after one warm-up of each. In turn, not one series after the other: on
    this shared machine a series of ten bare imports measured 0.40-0.65 s from one
    minute to the next, which moved the ratio of two back-to-back series by 0.3."""
    run_child(reference)
    run_child(measured, env)
    pairs = [(run_child(reference).cpu, run_child(measured, env).cpu) for _ in range(runs)]
    return (
        statistics.median(cpu for cpu, _ in pairs),
        statistics.median(cpu for _, cpu in pairs),
    )


def measure(runs: int) -> list[Result]:
    """The start-up results: `sync`'s CPU against the bare imports, then `--help`/`--version`."""
    with simulator("--push", "0", "--in-app", "0") as url, throwaway_database() as database_url:
        env = sync_env(database_url, url)
        run_child(campaign_sync("migrate"), env)
        bare_cpu, sync_cpu = interleaved_cpu(BARE_IMPORTS, campaign_sync("sync"), runs, env)
    results = [
        Result("3", "`sync` start-up CPU vs importing httpx, sqlalchemy, psycopg", sync_cpu,
               bare_cpu, "s", max_ratio=1.3, note=f"median of {runs}; load {load_average()}"),
    ]  # fmt: skip
    for flag in ("--help", "--version"):
        wall, _ = median_run(campaign_sync(flag), runs)
        results.append(
            Result("3", f"`campaign-sync {flag}` wall", wall, REFERENCE_SECONDS, "s", max_ratio=1.0)
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    results = measure(parser.parse_args().runs)
    sys.exit(0 if print_results(results) else 1)


if __name__ == "__main__":
    main()
