"""Per-app politeness: one shared pause after a 429, and an adaptive (AIMD) request rate.

Batch publishes no rate limit, so the gate learns one: every 429 halves the app's rate
(multiplicative decrease) and every success adds back a little (additive increase), so a
long pass settles just under the real limit. A 429 also pauses *every* request of the app
that has not been sent yet: N workers never hit Batch N times during a wait.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RatePolicy:
    backoff_min_seconds: float = 5.0  # Batch's documented floor after a 429
    backoff_max_seconds: float = 120.0
    min_rate: float = 1.0  # requests per second: the learned rate never goes below this
    max_rate: float = 200.0  # the learned rate never climbs past this
    increase_per_second: float = 1.0  # additive increase, in requests/s per second of success
    decrease_factor: float = 0.5  # multiplicative decrease on a 429


class RateGate:
    """Admits an app's requests: waits out a shared pause, then paces at the learned rate."""

    def __init__(
        self,
        policy: RatePolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_pause: Callable[[float], None] | None = None,
    ) -> None:
        """`on_pause(seconds)` hears every 429: the pause in force, shared by all requests."""
        self.policy = policy
        self._on_pause = on_pause
        self._clock = clock
        self._rng = rng or random.Random()
        self._paused_until = 0.0
        self._pause_started = float("-inf")
        self._consecutive_429 = 0
        self._rate: float | None = None  # None: no 429 seen yet, nothing to pace
        self._next_slot = 0.0
        self._recent_sends: deque[float] = deque()
        self.total_429 = 0

    @property
    def rate(self) -> float | None:
        """Current learned requests/s, or None while unlimited (no 429 seen)."""
        return self._rate

    def pause_remaining(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    async def acquire(self) -> float:
        """Wait until this request may be sent; returns its send time (the clock's)."""
        while True:
            now = self._clock()
            if now < self._paused_until:
                await asyncio.sleep(self._paused_until - now)
                continue
            if self._rate is not None:
                slot = max(now, self._next_slot)
                self._next_slot = slot + 1.0 / self._rate
                if slot > now:
                    await asyncio.sleep(slot - now)
                    if self._clock() < self._paused_until:
                        continue  # a 429 arrived while we waited for our slot
            sent_at = self._clock()
            self._recent_sends.append(sent_at)
            while self._recent_sends and self._recent_sends[0] < sent_at - 5.0:
                self._recent_sends.popleft()
            return sent_at

    def on_success(self) -> None:
        self._consecutive_429 = 0
        if self._rate is not None:
            self._rate = min(
                self.policy.max_rate, self._rate + self.policy.increase_per_second / self._rate
            )

    def on_too_many_requests(self, sent_at: float, retry_after: float | None) -> float:
        """Record a 429 for a request sent at `sent_at`; returns the pause now in force.

        A 429 for a request sent before the current pause began belongs to the same burst:
        it extends nothing and does not escalate the backoff or cut the rate again.
        """
        self.total_429 += 1
        if sent_at >= self._pause_started:
            self._start_pause(retry_after)
        pause = self.pause_remaining()
        if self._on_pause is not None:
            self._on_pause(pause)
        return pause

    def _start_pause(self, retry_after: float | None) -> None:
        policy = self.policy
        self._consecutive_429 += 1
        exponential = policy.backoff_min_seconds * 2 ** (self._consecutive_429 - 1)
        wait = min(policy.backoff_max_seconds, exponential) * (1 + 0.25 * self._rng.random())
        wait = max(wait, policy.backoff_min_seconds, retry_after or 0.0)
        now = self._clock()
        self._pause_started = now
        self._paused_until = max(self._paused_until, now + wait)
        self._rate = max(policy.min_rate, self._observed_rate(now) * policy.decrease_factor)
        self._next_slot = self._paused_until

    def _observed_rate(self, now: float) -> float:
        if self._rate is not None:
            return self._rate
        window = [t for t in self._recent_sends if t >= now - 5.0]
        if len(window) < 2:
            return self.policy.min_rate * 2
        return len(window) / max(now - window[0], 1e-3)
