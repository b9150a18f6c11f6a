"""The command line's set-up window: from the process's start until a command begins its
work. Two things hold only inside it.

- **No cyclic garbage collector.** Importing what a command needs (SQLAlchemy, pydantic,
  httpx, psycopg and our modules) allocates several hundred thousand long-lived objects
  and next to no garbage, and the collector, triggered every 700 allocations (CPython's
  default threshold), walks them over and over meanwhile: 0.1-0.4 s of the 0.8-1.4 s of
  CPU of a `sync` of an empty app on the 2-core development machine (medians of
  interleaved runs, docs/performance.md, target 3). At the window's end, `gc.freeze()`
  moves every object then alive into the permanent generation (CPython's `gc`
  documentation describes it for this use: objects kept for the process's life are never
  examined again) and the collector is turned back on.
- **SIGTERM is a clean stop.** Nothing has been done yet (settings read, the database
  connected and its schema checked), so the command ends at once with one line and exit 0
  (`StoppedBeforeWork`) instead of dying of the signal (exit 143), as it did when a pod
  was deleted while `serve` waited for its database. After the window, SIGTERM is
  Python's default again, and `signals.run_until_signalled` takes it over for a pass.
"""

from __future__ import annotations

import gc
import signal

_window_open = False  # set_up_begins() ... set_up_ends()


class StoppedBeforeWork(Exception):
    """SIGTERM came while the command was still setting up: nothing was done."""


def _stopped_before_work(signum: int, _frame: object) -> None:
    raise StoppedBeforeWork(
        f"stopped by {signal.Signals(signum).name} before the work began; nothing was done"
    )


def set_up_begins() -> None:
    """Open the window: collector off, SIGTERM raises `StoppedBeforeWork`. For the
    process's entry point only (it changes the process's collector and SIGTERM handler)."""
    global _window_open
    _window_open = True
    gc.disable()
    signal.signal(signal.SIGTERM, _stopped_before_work)


def set_up_ends() -> None:
    """Close the window if `set_up_begins` opened it: freeze what is alive, turn the
    collector back on, give SIGTERM back its default. Else do nothing (a command invoked
    in-process, as the tests do, leaves the caller's process alone). Safe to call twice."""
    global _window_open
    if not _window_open:
        return
    _window_open = False
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.freeze()
    gc.enable()
