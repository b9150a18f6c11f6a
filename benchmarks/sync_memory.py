"""Peak memory (RSS) of a `campaign-sync sync` process syncing many campaigns
(target: 100,000 campaigns under 300 MB). The pass streams page by page, so its memory
should not grow with the number of campaigns beyond the sweep's set of seen tokens.

The simulator runs in its own process; the sync is a real `campaign-sync sync` process
whose own peak RSS is read with os.wait4. Set DATABASE_URL for PostgreSQL (default: a
temporary SQLite file).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _simulator import start_simulator

TARGET_MB = 300.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--campaigns", type=int, default=100_000)
    args = parser.parse_args()
    push = args.campaigns // 2
    in_app = args.campaigns - push
    simulator, base_url = start_simulator("--push", str(push), "--in-app", str(in_app))
    workdir = tempfile.mkdtemp()
    env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/memory.db",
        "BATCH_API_BASE_URL": base_url,
        "BATCH_API_KEY": "KEY",
        "BATCH_REST_API_KEY": "SECRET",
        "CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS": "0.5",
        "CAMPAIGN_SYNC_LOG_LEVEL": "warning",
    }
    try:
        subprocess.run([sys.executable, "-m", "campaign_sync", "migrate"], env=env, check=True)
        started = time.monotonic()
        sync = subprocess.Popen([sys.executable, "-m", "campaign_sync", "sync"], env=env)
        _, status, usage = os.wait4(sync.pid, 0)
        elapsed = time.monotonic() - started
    finally:
        simulator.terminate()
        simulator.wait()
    peak_mb = usage.ru_maxrss / 1024  # Linux reports kilobytes
    exit_code = os.waitstatus_to_exitcode(status)
    print(f"synced {args.campaigns} campaigns in {elapsed:.0f}s (exit {exit_code})")
    print(f"peak RSS {peak_mb:.0f} MB; target {TARGET_MB:.0f} MB; ratio {peak_mb / TARGET_MB:.2f}")


if __name__ == "__main__":
    main()
