"""The command line's process: its start-up without the cyclic garbage collector, and
SIGTERM outside a pass.

Importing what a command needs (SQLAlchemy, pydantic, httpx, psycopg and our modules)
allocates several hundred thousand long-lived objects and next to no garbage, and the
collector, triggered every 700 allocations (CPython's default threshold), walks them over
and over meanwhile: 0.1-0.35 s of the 0.8-1.4 s of CPU of a `sync` of an empty app on
the 2-core development machine (medians of interleaved runs, docs/performance.md,
target 3). So the command line turns
the collector off for its imports; once a command's modules are in, `imports_done` moves
every object then alive into the permanent generation (`gc.freeze`, which CPython's `gc`
documentation describes for this use: objects kept for the process's life are never
examined again) and turns the collector back on, before the command does any work.
"""

from __future__ import annotations

import gc
import signal

_collector_paused = False  # by imports_begin, until imports_done


def imports_begin() -> None:
    """Turn the collector off until `imports_done`. For the process's entry point only."""
    global _collector_paused
    _collector_paused = True
    gc.disable()


def imports_done() -> None:
    """Freeze what is alive and turn the collector back on, if `imports_begin` turned it
    off; else do nothing (a command invoked in-process, as the tests do, leaves the
    caller's collector alone). Safe to call more than once."""
    global _collector_paused
    if not _collector_paused:
        return
    _collector_paused = False
    gc.freeze()
    gc.enable()


class StoppedBeforeWork(Exception):
    """SIGTERM came while the command was still starting (imports, settings, the database
    connection) or already ending: nothing was running, nothing was left half done."""


def _stopped_outside_work(signum: int, _frame: object) -> None:
    raise StoppedBeforeWork(
        f"stopped by {signal.Signals(signum).name} outside a pass; nothing was left half done"
    )


def stop_outside_work() -> None:
    """Make SIGTERM end the command at once and cleanly (`StoppedBeforeWork`, exit 0) where
    Python would die of it (exit 143): while the command starts, and after its work.
    `signals.run_until_signalled` takes the signal over for the work itself and gives it
    back. For the process's entry point only (it replaces the process's handler)."""
    signal.signal(signal.SIGTERM, _stopped_outside_work)
