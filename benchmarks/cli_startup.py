"""Target 3 of issue 14, start-up: `campaign-sync sync`'s CPU <= 1.3x that of
`python -c "import httpx, sqlalchemy, psycopg"`, and `--help`/`--version` under 0.3 s.

`sync` is measured whole, as an operator runs it: against a simulator with no campaigns
and a migrated throwaway PostgreSQL database, so the pass itself is four list calls and
its bookkeeping, and what remains is start-up: imports, settings, the engine, the schema
check. Each figure is the median of `--runs` child processes (CPU = user + system, from
the child's own resource usage); `sync` and its reference run in turn. The package is
compiled to bytecode first, as an installed copy is (`_harness.compile_package`).

A third figure, for information, is the floor under `sync`'s: a child that only imports
every library module a `sync` of the same empty app loaded (read from that `sync`'s own
`sys.modules` at its exit; none of ours), with the collector off and httpx's command line
deferred as `sync`'s set-up does. Nothing of ours runs in it, so no change to our code can
bring `sync` under it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

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

# A `sync` that writes, at its exit, the modules it loaded beyond those of Python's start.
_RECORD_MODULES = """
import atexit, sys
record = sys.argv.pop(1)
at_start = set(sys.modules)
def write():
    with open(record, "w") as out:
        out.write("\\n".join(name for name in list(sys.modules) if name not in at_start))
atexit.register(write)
sys.argv[0] = "campaign-sync"
from campaign_sync.startup import main
main()
"""

# Import the library modules of a record, as `sync`'s set-up does: collector off, httpx's
# command line deferred (campaign_sync.startup itself is a few imports of the standard library).
_IMPORT_RECORDED = """
import gc, importlib, sys
gc.disable()
from campaign_sync.startup import defer_httpx_command_line
defer_httpx_command_line()
for name in open(sys.argv[1]).read().split():
    if name.split(".")[0] != "campaign_sync" and name != "httpx._main":
        try:
            importlib.import_module(name)
        except ImportError:  # an alias some library put in sys.modules (none is ours)
            pass
"""


def library_modules(env: dict[str, str], record: str) -> list[str]:
    """Write to the file `record` the library modules a `sync` with `env` loads (by name,
    in load order) and return the command that imports just those (`_IMPORT_RECORDED`)."""
    run_child([sys.executable, "-P", "-c", _RECORD_MODULES, record, "sync"], env)
    return [sys.executable, "-P", "-c", _IMPORT_RECORDED, record]


def median_run(
    args: list[str], runs: int, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Median wall and median CPU seconds of `runs` children (one warm-up run first)."""
    run_child(args, env)
    children = [run_child(args, env) for _ in range(runs)]
    return statistics.median(c.wall for c in children), statistics.median(c.cpu for c in children)


def interleaved_cpu(commands: list[list[str]], runs: int, env: dict[str, str]) -> list[float]:
    """Median CPU seconds of each of `commands` (all with `env`), run in turn `runs` times
    each after one warm-up of each. In turn, not one series after the other: on this
    shared machine a series of ten bare imports measured 0.40-0.65 s from one minute to
    the next, which moved the ratio of two back-to-back series by 0.3."""
    for command in commands:
        run_child(command, env)
    rounds = [[run_child(command, env).cpu for command in commands] for _ in range(runs)]
    return [statistics.median(cpus) for cpus in zip(*rounds, strict=True)]


def measure(runs: int) -> list[Result]:
    """The start-up results: `sync`'s CPU against the bare imports, then `--help`/`--version`."""
    with (
        simulator("--push", "0", "--in-app", "0") as url,
        throwaway_database() as database_url,
        tempfile.TemporaryDirectory() as scratch,
    ):
        env = sync_env(database_url, url)
        run_child(campaign_sync("migrate"), env)
        floor = library_modules(env, os.path.join(scratch, "modules"))
        bare_cpu, sync_cpu, floor_cpu = interleaved_cpu(
            [BARE_IMPORTS, campaign_sync("sync"), floor], runs, env
        )
    results = [
        Result("3", "`sync` start-up CPU vs importing httpx, sqlalchemy, psycopg", sync_cpu,
               bare_cpu, "s", max_ratio=1.3, note=f"median of {runs}; load {load_average()}"),
        Result("3", "floor: importing the libraries `sync` loads, nothing of ours", floor_cpu,
               bare_cpu, "s", note="for information: no change of ours goes below it"),
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
