"""Running a command's work until SIGTERM/SIGINT (or SIGHUP): the first signal asks the
work to stop after the page in flight, a second one stops it at once. Light on purpose:
`sync` imports it without the scheduler, metrics or HTTP server that `serve` needs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from campaign_sync.startup import STOP_SIGNALS, die_by_signal

T = TypeVar("T")

# Orchestrators send SIGKILL 30 s after SIGTERM (Kubernetes' terminationGracePeriodSeconds
# and docker stop's defaults are 30 s and 10 s; ours set 30 s): a stop must end before.
STOP_GRACE_SECONDS = 25.0  # serve: passes in flight may finish their page this long
SYNC_CANCEL_SECONDS = 20.0  # sync: after this, the pass is cancelled as by a second signal
HARD_STOP_SECONDS = 5.0  # once cancelled, what the work's clean-up may take; then exit 1
# serve: its passes are cancelled at STOP_GRACE_SECONDS and get 1.5 s more; the process
# exits 1 at this, 2 s before an orchestrator's SIGKILL at 30 s.
SERVE_HARD_STOP_SECONDS = 28.0
EXIT_FAILED = 1


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a command's work: SIGTERM and SIGINT, and SIGHUP unless this
    process ignores it. SIGHUP is what a closing terminal (an ended ssh session) sends; left
    to its default it killed `sync` at once, its run recorded `running` until the next
    pass (a review's find). Under `nohup` (SIGHUP ignored) it stays ignored: the pass goes
    on, as `nohup` asks. A SIGHUP is never a *second* signal (`escalates`)."""
    ignored = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    return tuple(sig for sig in STOP_SIGNALS if not (sig == signal.SIGHUP and ignored))


def escalates(signum: int) -> bool:
    """Whether `signum`, arriving after a first stop signal, asks for a stop at once. Not
    SIGHUP: a closed terminal sends it twice to a job of an interactive shell (the kernel
    to the foreground group, then bash to each of its jobs, its `huponexit` rule), and
    the second cut `sync` short, exit 1, its runs `cancelled` (a review's find). A person
    asks for a stop at once with a second Ctrl-C or SIGTERM."""
    return signum != signal.SIGHUP


class StoppedAtOnce(Exception):
    """A second SIGTERM/SIGINT stopped the work at once; passes in flight are recorded
    `interrupted`, their last committed page kept."""


def run_until_signalled(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, T]],
    *,
    cancel_after: float | None = None,
    hard_stop: float = HARD_STOP_SECONDS,
) -> T:
    """Run `main(stop)`; SIGTERM/SIGINT (and SIGHUP: `stop_signals`) set `stop` (finish
    the page in flight, then stop), a second one cancels it: `StoppedAtOnce`.
    `cancel_after` (seconds after the first signal) cancels it too, for work that has no
    grace of its own (`sync`).

    Once cancelled, the work's clean-up has `hard_stop` seconds; without `cancel_after`,
    the whole stop has `SERVE_HARD_STOP_SECONDS` after the first signal. Past either,
    the process exits at once with status 1 and one line on stderr: a database or a
    Batch that stopped answering holds a thread no cancellation reaches (a review saw
    `sync` and `serve` ignore SIGTERM and SIGINT for minutes). The page in flight is
    rolled back by the database when the connection drops; the next pass resumes.

    Signals during the teardown are ignored, and so are SIGTERM and SIGINT after it when
    the process had Python's own handling of them (SIGTERM would kill it with exit 143,
    SIGINT raise KeyboardInterrupt, while it reports the work's outcome)."""
    signals = stop_signals()
    previous = {sig: signal.getsignal(sig) for sig in signals}
    watchdogs: list[threading.Timer] = []
    cut_by: list[str] = []

    def exit_after(seconds: float, why: str) -> None:
        def now() -> None:
            message = (
                f"campaign-sync: {why}, and the work did not end {seconds:g} s later (a "
                "database or Batch not answering?): exiting now, status 1; the next pass "
                "resumes from the last committed page\n"
            )
            # Said if it can be: with the terminal gone (a SIGHUP's stop) the write raised
            # EIO, which ended this thread before the exit, and the process hung on until
            # a lock timeout or forever (a review's find).
            with contextlib.suppress(OSError):
                os.write(2, message.encode())
            os._exit(EXIT_FAILED)

        timer = threading.Timer(seconds, now)
        timer.daemon = True
        watchdogs.append(timer)
        timer.start()

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def cut(why: str) -> None:
            if task is None or task.done() or cut_by:
                return
            cut_by.append(why)
            task.cancel()
            exit_after(hard_stop, why)

        signalled: list[bool] = []
        armed: list[bool] = []

        def arm(asked: str) -> None:
            """The stop's grace and watchdog, once, whoever asked for the stop."""
            if armed:
                return
            armed.append(True)
            if cancel_after is not None:  # cancelled then, and the clean-up watched
                grace = f"the stop's grace period ({cancel_after:g} s) ran out"
                loop.call_later(cancel_after, cut, grace)
            else:  # the work keeps its own grace (serve's passes: STOP_GRACE_SECONDS)
                exit_after(SERVE_HARD_STOP_SECONDS, asked)

        def on_signal(signum: int) -> None:
            if signalled:
                if escalates(signum):
                    cut("stopped at once by a second signal")
                return
            signalled.append(True)
            stop.set()
            arm("a stop was asked (SIGTERM, SIGINT or SIGHUP)")

        async def stopped_by_the_work() -> None:
            # A stop the work sets itself (serve, on a schema it does not know) gets the
            # same grace and watchdog, and the next signal is a first one: it was taken for
            # a second, which cut the passes in flight at once, exit 1 (a review's find).
            await stop.wait()
            arm("the command stopped itself")

        for sig in signals:
            loop.add_signal_handler(sig, on_signal, sig)
        watcher = asyncio.create_task(stopped_by_the_work())
        try:
            return await main(stop)
        finally:
            watcher.cancel()
            for sig in signals:  # too late to act on: the work is ending anyway
                loop.add_signal_handler(sig, lambda: None)

    try:
        return asyncio.run(runner())
    except asyncio.CancelledError:
        why = cut_by[0] if cut_by else "stopped at once by a second signal"
        raise StoppedAtOnce(
            f"{why}; passes in flight are recorded interrupted and the next pass resumes "
            "from their last committed page"
        ) from None
    finally:
        for timer in watchdogs:
            timer.cancel()
        for sig, handler in previous.items():
            if handler in (signal.SIG_DFL, signal.default_int_handler):
                # The work has ended: a SIGTERM now (a second one from an orchestrator, while
                # the summary is printed) would kill the process by default, exit 143, and
                # a SIGINT raise KeyboardInterrupt (exit 130, or 1 "aborted"), as if the run
                # had failed (a review: 10 of 120 Ctrl-Cs near a pass's end). The process is
                # about to exit with the work's own code.
                handler = signal.SIG_IGN
            signal.signal(sig, handler)


@contextlib.contextmanager
def held_until_recorded(
    notice: str, held: list[int], on_hold: Callable[[], None] | None = None
) -> Iterator[None]:
    """Within the block, a first SIGINT, SIGTERM or SIGHUP (`stop_signals`) is held instead
    of ending the process (SIGHUP, a closed terminal, killed it before its audit row was
    written: a review's find):
    `notice` is written to stderr (when it can be: a closed stderr is no error here) and
    the signal appended to `held`, for the caller to act on once it has recorded and said
    what it was doing (the command line ends by it: `cli._act_on_held`);
    a second one stops at once (a SIGHUP never does: `escalates`): a SIGTERM ends the
    process (its default), a SIGINT raises KeyboardInterrupt. `on_hold` is called at the first (to
    cut short what may wait: retries' backoffs). The handlers from before are back when
    the block ends; a signal the process ignores stays ignored. For what must be recorded
    once sent (update-in-app: an update Batch may have taken; a review lost its audit
    row to a Ctrl-C). Outside the main thread, where no handler can be set, it does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [
        sig
        for sig in stop_signals()
        if signal.getsignal(sig) is not signal.SIG_IGN  # a trap '' INT, a background job
    ]
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def hold(signum: int, _frame: object) -> None:
        if held:
            if not escalates(signum):
                return
            if signum == signal.SIGTERM:  # its default: the end of the process, at once
                die_by_signal(signum)
            raise KeyboardInterrupt
        held.append(signum)
        # Not where an error may surface: raised from a handler, it unwinds whatever runs
        # (the send, its audit), and the same Ctrl-C that sent this ended `| tee`, the
        # reader of stderr (BrokenPipeError: the audit row was lost, a review's find).
        with contextlib.suppress(OSError):
            os.write(2, f"campaign-sync: {notice}\n".encode())
        if on_hold is not None:
            on_hold()

    for sig in signals:
        signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


__all__ = [
    "HARD_STOP_SECONDS",
    "SERVE_HARD_STOP_SECONDS",
    "STOP_GRACE_SECONDS",
    "SYNC_CANCEL_SECONDS",
    "StoppedAtOnce",
    "held_until_recorded",
    "run_until_signalled",
]
