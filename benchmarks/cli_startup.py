"""Start-up of `campaign-sync --help` and `--version` (target: under 0.3 s each).

Runs the installed entry point (or `python -m campaign_sync` when it is not on the PATH)
several times and prints the median wall time and CPU time (user + system, from the
children's resource usage) of each, with the ratio to the 0.3 s reference.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import time

REFERENCE_SECONDS = 0.3


def command() -> list[str]:
    installed = shutil.which("campaign-sync")
    return [installed] if installed else [sys.executable, "-m", "campaign_sync"]


def measure(args: list[str], runs: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of `runs` start-ups."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    base = command()
    subprocess.run([*base, "--help"], stdout=subprocess.DEVNULL, check=True)  # warm the caches
    print(f"reference: {REFERENCE_SECONDS:.2f} s; median of {runs} runs of {' '.join(base)}")
    for flag in ("--help", "--version"):
        wall, cpu = measure([*base, flag], runs)
        print(
            f"{flag:<10} wall {wall:.3f} s (ratio {wall / REFERENCE_SECONDS:.2f})   "
            f"cpu {cpu:.3f} s (ratio {cpu / REFERENCE_SECONDS:.2f})"
        )


if __name__ == "__main__":
    main()
