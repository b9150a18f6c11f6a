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
- **SIGTERM (or SIGINT, or SIGHUP) ends the process at once, with one line.** Nothing has
  been done yet (settings read, the database connected and its schema checked). `sync` and
  `serve` then exit 0 instead of dying of the signal (143), as `serve` did when a pod was
  deleted while it waited for its database: their stop is a clean one. Any other command
  ends by the signal after that line (a Ctrl-C must not read as `check`'s "ready"). After
  the window, the signals have their handlers from before again, and
  `signals.run_until_signalled` takes them over for a pass. The window opens before the
  command line's modules are imported (`main`, the executable's entry point): only
  Python's own start-up comes before it, the first 20-30 ms. It opened after them until
  2026-11-30 (click and our command line, ~50-80 ms more, in which a SIGTERM killed the
  process with 143 and the collector ran through those imports).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.machinery
import os
import signal
import sys
import types
from typing import Any, NoReturn

_window_open = False  # set_up_begins() ... set_up_ends()
# The signals that stop a command, here and in a pass (`signals.stop_signals`). SIGHUP too
# (a terminal closing): it killed `serve` waiting for its database with no line, exit 129,
# where SIGTERM said it had stopped and exited 0 (a review's find).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_handlers_before: dict[int, object] = {}  # what the window replaced, restored at its end


STOPPED_BEFORE_WORK = "campaign-sync: stopped by {signal} before the work began; nothing was done\n"


# The commands whose stop is a clean one, exit 0, from the start (docs/reliability.md,
# "Signals"): an orchestrator stopping `serve`, or a `sync` pod deleted as it starts.
CLEAN_STOP_COMMANDS = frozenset({"sync", "serve"})


def _command(args: list[str]) -> str | None:
    """The command named in `args` (the group's own options are flags: --help, --version)."""
    return next((arg for arg in args if not arg.startswith("-")), None)


# A terminal whose echo a read turned off (`config.read_at_most` reading the REST key), and
# its settings before: put back by the ends of the process that run no `finally` (the
# window's exit and `die_by_signal`). A Ctrl-C at the key's prompt of `sync` left the
# shell typing blind (a review's find).
_terminal_before: tuple[int, list[Any]] | None = None


def terminal_changed(descriptor: int, settings: list[Any] | None) -> None:
    """Note that the terminal at `descriptor` had `settings` (termios.tcgetattr's) before a
    change that must not outlive the process; None: it has them back."""
    global _terminal_before
    _terminal_before = None if settings is None else (descriptor, settings)


def _restore_terminal() -> None:
    """Put back the terminal `terminal_changed` noted, once (the window's stop of a command
    that then dies by the signal came here twice: two blank lines)."""
    global _terminal_before
    if _terminal_before is None:
        return
    import termios

    descriptor, settings = _terminal_before
    _terminal_before = None
    with contextlib.suppress(OSError, termios.error):
        termios.tcsetattr(descriptor, termios.TCSANOW, settings)
        os.write(2, b"\n")  # the line the user's unseen Enter did not end


def _stopped_before_work(signum: int, _frame: object) -> None:
    """End the process at once with one line: exit 0 for `sync` and `serve`, whose stop
    is a clean one; any other command ends by the signal itself (a shell's 130 or 143),
    so that `campaign-sync check && deploy` or a loop of `update-in-app` stops instead of
    reading a Ctrl-C as success (a review's find, once the window opened before the
    command line's imports). Not an exception: raised from a signal handler it could land
    in any library's `except Exception` (psycopg's import of libpq has one) and be lost,
    leaving `serve` running (a review saw it once in 30-50 tries). Nothing is open but a
    connection being made, which the kernel closes with the process."""
    _restore_terminal()
    with contextlib.suppress(OSError):  # stderr's reader gone: the status still tells
        os.write(2, STOPPED_BEFORE_WORK.format(signal=signal.Signals(signum).name).encode())
    if _command(sys.argv[1:]) in CLEAN_STOP_COMMANDS:
        os._exit(0)
    die_by_signal(signum)


def die_by_signal(signum: int) -> NoReturn:
    """End the process at once by `signum`'s default action (a shell's 128 + signum: 130
    for SIGINT, 143 for SIGTERM), nothing flushed or cleaned up. Here, in the leaf module
    the executable imports first, so that the set-up window, `cli.end_by_signal` and
    `signals.held_until_recorded` end a process the same way; a terminal whose echo was
    turned off gets it back first (`terminal_changed`)."""
    _restore_terminal()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
    os._exit(128 + signum)  # only if the signal is blocked: the status a shell would show


def main() -> None:
    """The `campaign-sync` executable (and `python -m campaign_sync`): opens the set-up
    window, then imports the command line and runs it (`cli.run`, which closes it)."""
    set_up_begins()
    defer_httpx_command_line()
    from campaign_sync.cli import run

    run()


def defer_httpx_command_line() -> None:
    """Keep `import httpx` from importing httpx's own command line (`httpx._main`, and
    with it rich, pygments and click's terminal code) in this process: httpx 0.28's
    `__init__` imports it eagerly wherever those are installed, and rich is our dependency
    (the live display), so every `sync` paid ~25 ms of CPU (`python -X importtime`, 2026-11-30:
    `httpx._main` 27 ms cumulative of a 0.46 s start) for a command line it never runs,
    and issue 14 asks that `sync` import no rich when not on a terminal. The upstream
    fork made the same import lazy (pydantic/httpx2 pull request 947, "Do a lazy import
    of the _main CLI module"). What stands in for it imports the real module the first
    time `httpx.main` is called, so nothing is lost. For the executable only (it changes
    the process's `sys.modules`); does nothing once httpx is imported."""
    if "httpx" in sys.modules or _HTTPX_COMMAND_LINE in sys.modules:
        return
    stand_in = types.ModuleType(_HTTPX_COMMAND_LINE, "httpx's command line, imported if run")
    stand_in.__spec__ = importlib.machinery.ModuleSpec(_HTTPX_COMMAND_LINE, None)  # find_spec

    def main(*args: Any, **kwargs: Any) -> Any:
        if sys.modules.get(_HTTPX_COMMAND_LINE) is stand_in:
            del sys.modules[_HTTPX_COMMAND_LINE]
        real = importlib.import_module(_HTTPX_COMMAND_LINE)
        return real.main(*args, **kwargs)

    stand_in.main = main  # type: ignore[attr-defined]
    sys.modules[_HTTPX_COMMAND_LINE] = stand_in


_HTTPX_COMMAND_LINE = "httpx._main"


def set_up_begins() -> None:
    """Open the window: collector off, SIGTERM and SIGINT end the process at once
    (`_stopped_before_work`). For the process's entry point only (it changes the
    process's collector and signal handlers).
    Opening it again while it is open does nothing."""
    global _window_open
    if _window_open:
        return
    _window_open = True
    gc.disable()
    for stop in STOP_SIGNALS:
        before = signal.getsignal(stop)
        if before is not signal.SIG_IGN:  # a signal the parent made us ignore stays ignored
            _handlers_before[stop] = before
            signal.signal(stop, _stopped_before_work)


def set_up_ends() -> None:
    """Close the window if `set_up_begins` opened it: freeze what is alive, turn the
    collector back on, give both signals back the handlers they had. Else do nothing (a
    command invoked in-process, as the tests do, leaves the caller's process alone). Safe
    to call twice."""
    global _window_open
    if not _window_open:
        return
    _window_open = False
    while _handlers_before:
        stop, before = _handlers_before.popitem()
        signal.signal(stop, before)  # type: ignore[arg-type]
    gc.freeze()
    gc.enable()
