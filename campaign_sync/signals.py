"""Running a command's work until SIGTERM/SIGINT: the first signal asks the work to stop
after the page in flight, a second one stops it at once. Light on purpose: `sync` imports
it without the scheduler, metrics or HTTP server that `serve` needs."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class StoppedAtOnce(Exception):
    """A second SIGTERM/SIGINT stopped the work at once; passes in flight are recorded
    `interrupted`, their last committed page kept."""


def run_until_signalled(main: Callable[[asyncio.Event], Coroutine[Any, Any, T]]) -> T:
    """Run `main(stop)`; SIGTERM/SIGINT set `stop` (finish the page in flight, then stop),
    a second one cancels it: `StoppedAtOnce`. Signals during the teardown are ignored, and
    so is a SIGTERM after it when the process had no handler of its own (the default would
    kill it with exit 143 while it reports the work's outcome)."""
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal() -> None:
            if stop.is_set() and task is not None:
                task.cancel()  # a second signal: stop now
            stop.set()

        for sig in signals:
            loop.add_signal_handler(sig, on_signal)
        try:
            return await main(stop)
        finally:
            for sig in signals:  # too late to act on: the work is ending anyway
                loop.add_signal_handler(sig, lambda: None)

    try:
        return asyncio.run(runner())
    except asyncio.CancelledError:
        raise StoppedAtOnce(
            "stopped at once by a second signal; passes in flight are recorded interrupted "
            "and the next pass resumes from their last committed page"
        ) from None
    finally:
        for sig, handler in previous.items():
            if sig == signal.SIGTERM and handler == signal.SIG_DFL:
                # The work has ended: a SIGTERM now (a second one from an orchestrator, while
                # the summary is printed) would kill the process by default, exit 143, as if
                # the run had failed. The process is about to exit with the work's own code.
                handler = signal.SIG_IGN
            signal.signal(sig, handler)


__all__ = ["StoppedAtOnce", "run_until_signalled"]
