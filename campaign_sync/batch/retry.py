"""When to try a Batch call again, and how long to wait; kept apart from the request loop.

Built on tenacity, imported at a call's first retriable failure: a pass whose calls all
succeed at once never loads it (11 modules, 23 M instructions of every `sync`'s start,
about 1% of it: valgrind cachegrind, 2026-11-30). 429s wait on the app's shared
`RateGate` pause (so every worker of the app waits together); 5xx, timeouts, connection
errors and unreadable 200s back off exponentially with jitter. Every call has a budget of
attempts and seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from campaign_sync.batch.errors import BatchError, RetryBudgetExhausted, TooManyRequests
from campaign_sync.batch.ratelimit import RateGate

if TYPE_CHECKING:
    from tenacity import RetryCallState
    from tenacity.wait import wait_base

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryBudget:
    """What one logical call may spend: attempts, and seconds from its first send to its
    last answer (waits included). `named_by` is what set `max_seconds`, for the message of
    a call that runs out of time (the setting to raise, or `check`'s own limit)."""

    max_attempts: int = 8
    max_seconds: float = 600.0
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    named_by: str = "CAMPAIGN_SYNC_RETRY_MAX_SECONDS"


def _is_retriable(error: BaseException) -> bool:
    return isinstance(error, BatchError) and error.retriable


class RetryPolicy:
    """Runs one logical call under the budget, counting the retries it makes."""

    def __init__(self, budget: RetryBudget, gate: RateGate, *, app: str) -> None:
        self.budget = budget
        self.gate = gate
        self.app = app
        self._exponential: wait_base | None = None  # made at the first retry

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TooManyRequests):
            return self.gate.pause_remaining()
        if self._exponential is None:
            from tenacity import wait_exponential, wait_random

            budget = self.budget
            self._exponential = wait_exponential(
                multiplier=budget.backoff_initial_seconds, max=budget.backoff_max_seconds
            ) + wait_random(0, budget.backoff_initial_seconds)
        return float(self._exponential(state))

    def _before_sleep(self, state: RetryCallState, on_retry: Callable[[], None] | None) -> None:
        if on_retry is not None:
            on_retry()
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "retrying %s for app '%s' after %s (attempt %d of %d, waiting %.1fs)",
            getattr(error, "route", "?"),
            self.app,
            error.summary if isinstance(error, BatchError) else error,
            state.attempt_number,
            self.budget.max_attempts,
            wait,
            extra={
                "route": getattr(error, "route", None),
                "status": getattr(error, "status", None),
                "attempt": state.attempt_number,
                "wait_seconds": round(wait, 3),
            },
        )

    async def call(
        self, attempt: Callable[[], Awaitable[T]], on_retry: Callable[[], None] | None = None
    ) -> T:
        """`attempt()`'s result, trying again while it raises a retriable `BatchError` and
        the budget lasts; raises `RetryBudgetExhausted` when it runs out, and any other
        error as it came."""
        started = time.monotonic()
        try:
            # Most calls succeed at once and skip tenacity's per-call set-up, which cost
            # ~40 µs a call, 0.2 s of CPU per 2,000 requests (benchmarks/http_transport.py).
            return await attempt()
        except BatchError as error:
            if not _is_retriable(error):
                raise
            first_failure = error
        replay = [first_failure]
        from tenacity import (
            AsyncRetrying,
            RetryError,
            retry_if_exception,
            stop_after_attempt,
            stop_before_delay,
        )

        async def again() -> T:
            if replay:  # tenacity's attempt 1 is the one already made
                raise replay.pop()
            return await attempt()

        retrying = AsyncRetrying(
            retry=retry_if_exception(_is_retriable),
            stop=stop_after_attempt(self.budget.max_attempts)
            | stop_before_delay(self.budget.max_seconds - (time.monotonic() - started)),
            wait=self._wait,
            sleep=self.gate.wait,  # a stop ends the wait: StopRequested, not retried
            before_sleep=lambda state: self._before_sleep(state, on_retry),
            reraise=False,
        )
        try:
            return await retrying(again)
        except RetryError as gave_up:
            last = gave_up.last_attempt.exception()
            assert isinstance(last, BatchError)
            seconds = time.monotonic() - started
            attempts = gave_up.last_attempt.attempt_number
            raise RetryBudgetExhausted(
                f"gave up on {last.route} for app '{self.app}' after {attempts} attempts "
                f"in {seconds:.1f}s; last error: {last}",
                last_error=last,
                attempts=attempts,
                seconds=seconds,
            ) from last
