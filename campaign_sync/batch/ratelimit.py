"""Per-app politeness: one shared pause after a 429, and a paced request rate that is
learned, remembered across passes, and adapted (AIMD).

Batch publishes no rate limit (only "wait at least 5 seconds" after a 429), so the gate
learns one. The rules, each measured in benchmarks/rate_limit.py (issue #14):

- **Start**: paced from the first request. With a rate learned by earlier passes
  (`LearnedRate`, stored per app by `db.pacing`), at that rate; with none, a *slow start* at
  `slow_start_rate` that multiplies by `slow_start_factor` per second of full-paced sending
  (per answered request, so an idle app does not climb) until the first 429. A slow start
  that reaches `max_rate` without a 429 stops pacing: the server showed no limit worth one.
- **On a 429** (the first of a burst): every request of the app not yet sent waits at least
  `backoff_min_seconds` (Batch's floor), or `Retry-After` when longer, doubling while 429s
  repeat, with jitter from the second one on (a lone 429 waits the floor exactly: the
  requests after it are paced, never a burst, so there is no herd to spread); and the rate
  drops to `decrease_factor` x the rate Batch accepted just before: the requests sent in
  the last `window_seconds` before the refused one, per second, never more than the pace
  then in force, counted since the last pause (its time is no sending). A 429 again with
  no answer since the last one leaves the rate alone (the server has not recovered; the
  pause doubles): a storm must not cut it to nothing.
  A gentler cut than halving: that accepted rate is the limit plus at most the server's
  burst spread over the window.
- **After a 429**: additive increase, `increase_per_second` requests/s per second of
  full-paced sending, so a pass keeps probing slowly without provoking the next 429.
- **A 429 amid failures** (the first of a streak, when `untrusted_fault_share` or more of
  the requests sent in the span the accepted rate is measured over, or in the last
  `RECENT_SECONDS`, failed for another reason than a 429, at least
  `untrusted_fault_count` and as many as the 429s then: a 5xx, a timeout, a broken or cut
  answer, `on_fault`) pauses like any other but is spared the cut: it is taken as part
  of the server's trouble more than as its limit (the failures' backoffs and hangs also
  thin out the sending the accepted rate is measured on). Cut there, an incident of
  15 x (503, 429) near the end of a pass stored 10.3 req/s under a 50 req/s limit, and a
  pass with 20% failures and 5% random 429s stored 1.85 req/s; each next, healthy pass
  crawled at it (+0.02 req/s per second): 4.3x and 14.2x requests / 50
  (benchmarks/pace_recovery.py). It takes `spared_decrease_factor` (5%) off the pace
  instead, never below that share of the pace the gate started at, and ends a slow
  start's tripling: left wholly alone, a pace a little past a limit met amid 10% of 500s
  stayed there, pass after pass (benchmarks/steady_failures.py).
- **What is remembered**: the pace at the end of a pass, for the next one (`learned`).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from campaign_sync.batch.errors import StopRequested

ABANDONED = "stopping: a request waiting for Batch was abandoned"  # StopRequested's text
RECENT_SECONDS = 5.0  # how long sends and failures are kept (more than any window above)


def _remember(times: deque[float], now: float) -> None:
    """Add `now` to `times` (oldest first) and drop what is older than `RECENT_SECONDS`."""
    times.append(now)
    while times[0] < now - RECENT_SECONDS:
        times.popleft()


@dataclass(frozen=True)
class LearnedRate:
    """What earlier passes learned about an app: the pace to start at (requests/s), and
    whether a 429 taught it (`limit_seen`) or a slow start only reached it without one."""

    requests_per_second: float
    limit_seen: bool


@dataclass(frozen=True)
class RatePolicy:
    backoff_min_seconds: float = 5.0  # Batch's documented floor after a 429
    backoff_max_seconds: float = 120.0
    # A repeated 429's pause is up to this share longer, so that clients sharing a limit
    # (apps sharing a key) fall out of step; the first waits the floor exactly.
    backoff_jitter: float = 0.1
    min_rate: float = 1.0  # requests per second: the learned rate never goes below this
    max_rate: float = 200.0  # the learned rate never climbs past this
    increase_per_second: float = 0.02  # additive increase after a 429, req/s per second
    decrease_factor: float = 0.9  # on a 429: this share of the rate accepted just before
    # On a 429 amid failures: this share of the pace, never below this share of the pace
    # the gate started at (`RateGate._spare`).
    spared_decrease_factor: float = 0.95
    # Requests/s of an app with nothing learned yet; 30 measured against 20 and 40 under a
    # 50 req/s limit (docs/performance.md, section 4).
    slow_start_rate: float = 30.0
    slow_start_factor: float = 3.0  # the slow start's growth per second of sending
    window_seconds: float = 1.0  # how far back the accepted rate is measured at a 429
    # A 429 when this share of the requests sent in the window before it failed (not 429)
    # is spared the cut (`spared_decrease_factor`): what was sent then says little of the
    # limit.
    untrusted_fault_share: float = 0.05
    untrusted_fault_count: int = 2  # ... and at least this many: one 500 in a small pass
    # (19 requests, 5.3%) spared every 429 of a limit far below the stored pace
    stop_grace_seconds: float = 5.0  # after a stop, paced requests go on this long


class RateGate:
    """Admits an app's requests: waits out a shared pause, then paces at the learned rate."""

    def __init__(
        self,
        policy: RatePolicy,
        *,
        learned: LearnedRate | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        on_pause: Callable[[float], None] | None = None,
    ) -> None:
        """`learned`: the rate earlier passes learned (None, or a value that is not a
        positive finite number: a slow start). `on_pause(seconds)` hears every 429: the
        pause in force, shared by all requests."""
        self.policy = policy
        self._on_pause = on_pause
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._paused_until = 0.0
        self._pause_started = float("-inf")
        self._consecutive_429 = 0
        # Clamped like a learned rate: below min_rate the slow start's per-request growth
        # (factor ** (1 / pace)) overflows, and a pace of 0.001/s parks every request.
        start = policy.slow_start_rate
        start = start if math.isfinite(start) else policy.max_rate
        self._pace = min(policy.max_rate, max(policy.min_rate, start))
        self._limit_seen = False
        usable = learned is not None and math.isfinite(learned.requests_per_second)
        if learned is not None and usable and learned.requests_per_second > 0:
            self._pace = min(policy.max_rate, max(policy.min_rate, learned.requests_per_second))
            self._limit_seen = learned.limit_seen
        # How low a 429 amid failures may take the pace (`_spare`): a cut's worth below the
        # pace this gate started at (a 429 that is no such one may cut below it).
        self._spare_floor = policy.spared_decrease_factor * self._pace
        self._climb_held = False  # a 429 amid failures ended the slow start's tripling
        self._next_slot = 0.0
        self.stop: asyncio.Event | None = None  # set by the pass: see `wait`
        self._stop_seen_at: float | None = None
        self._recent_sends: deque[float] = deque()
        self._first_send: float | None = None
        self.total_429 = 0
        self._recent_faults: deque[float] = deque()  # when requests failed (`on_fault`)
        self._recent_429: deque[float] = deque()  # when 429s came

    @property
    def rate(self) -> float | None:
        """The requests/s a 429 taught (and the climb since), or None while no limit was
        seen (the gate is then in its slow start, or unpaced)."""
        return self._pace if self._limit_seen else None

    @property
    def pace(self) -> float | None:
        """The requests/s the gate admits now; None once a slow start found no limit."""
        return None if self._unpaced() else self._pace

    @property
    def sent_any(self) -> bool:
        """Whether any request went through the gate (a pass that sent none learned
        nothing)."""
        return self._first_send is not None

    def learned(self) -> LearnedRate:
        """What the next pass of this app should start from (see `db.pacing`)."""
        return LearnedRate(self._pace, self._limit_seen)

    def pause_remaining(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def _unpaced(self) -> bool:
        return not self._limit_seen and self._pace >= self.policy.max_rate

    async def acquire(self) -> float:
        """Wait until this request may be sent; returns its send time (the clock's)."""
        while True:
            now = self._clock()
            if now < self._paused_until:
                await self.wait(self._paused_until - now)
                continue
            if not self._unpaced():
                slot = max(now, self._next_slot)
                self._next_slot = slot + 1.0 / self._pace
                if slot > now:
                    await self._pace_wait(slot - now)
                    if self._clock() < self._paused_until:
                        continue  # a 429 arrived while we waited for our slot
            sent_at = self._clock()
            if self._first_send is None:
                self._first_send = sent_at
            _remember(self._recent_sends, sent_at)
            return sent_at

    async def wait(self, seconds: float) -> None:
        """Sleep `seconds` (a 429 pause, a retry's backoff), unless `stop` is or gets set:
        then raise `StopRequested` at once; the pass commits what arrived and asks for the
        rest next time."""
        if self.stop is None:
            await self._sleep(seconds)
            return
        if self.stop.is_set():
            raise StopRequested(ABANDONED)
        stopped = asyncio.ensure_future(self.stop.wait())
        slept = asyncio.ensure_future(self._sleep(seconds))
        try:
            await asyncio.wait((stopped, slept), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            slept.cancel()
        if self.stop.is_set():
            raise StopRequested(ABANDONED)

    async def _pace_wait(self, seconds: float) -> None:
        """Wait for a pacing slot. After a stop, the page in flight goes on at its pace for
        `policy.stop_grace_seconds` (at 20 requests/s and more, a page's 100 details fit),
        then the requests not yet sent are abandoned (`StopRequested`): at a learned
        1 request/s, finishing the page would take 100 s."""
        if self.stop is not None and self.stop.is_set():
            now = self._clock()
            if self._stop_seen_at is None:
                self._stop_seen_at = now
            if now - self._stop_seen_at >= self.policy.stop_grace_seconds:
                raise StopRequested(ABANDONED)
        await self._sleep(seconds)

    def on_answer(self) -> None:
        """An answer that is no 429 and no success (a 404, a 5xx): the server took the
        request under its limit, so the next 429 is no repeat (the streak that stops
        rate cuts and doubles pauses ends); the rate does not climb. Without this, the
        404s of deletion confirmations made every later 429 a repeat: no cut, pauses
        doubling to their longest."""
        self._consecutive_429 = 0

    def on_fault(self) -> None:
        """A request the server or the network failed for another reason than a 429: a
        5xx, a timeout, a connection broken, an answer cut short. Kept for
        `RECENT_SECONDS` (see `amid_failures`); the rate is left alone (the retry's own
        backoff spaces the request out)."""
        _remember(self._recent_faults, self._clock())

    def amid_failures(self, refused_at: float, since: float = 0.0) -> bool:
        """Whether `policy.untrusted_fault_share` or more of the requests sent failed
        (`on_fault`; failures seen until now count), and `policy.untrusted_fault_count` at
        least, and no fewer than the 429s then (this one included: where 429s outnumber
        the failures, the limit is what refuses, and a real limit of 20 req/s met with 8-12%
        of 500s beside it was never learned, each of its 70 x 429 a pass sparing the rate),
        over the span `accepted_rate` measures before the request refused at
        `refused_at` (the failures of the whole window before it, a pause inside it
        included) or over the last `RECENT_SECONDS`: then sending was thinned out by the
        failures' backoffs, and the 429 says nothing of the pace. Both spans, measured
        with benchmarks/pace_recovery.py and an incident of 15 x (503, 429) near the end
        of a 1,500-detail pass, both under a 50 req/s limit: over the last 5 s alone, the
        incident's first 11 x 429 each cut the rate (21 req/s stored; the next pass 2.3x
        requests / 50); over the measured second alone, each 429 just after a pause (too
        little sent since to count a failure) cut it, and the mix stored 28.6 req/s (the
        next pass 1.74x)."""
        now = self._clock()
        policy = self.policy
        window = policy.window_seconds
        # (failures seen since, sends counted from, sends counted until): a pause ends the
        # sends the accepted rate counts, not the failures before it (their retries wait
        # it out, then thin out the sending after it).
        for faults_from, start, end in (
            (refused_at - window, self._measured_from(refused_at, since), refused_at),
            (now - RECENT_SECONDS, now - RECENT_SECONDS, now),
        ):
            faults = sum(1 for t in self._recent_faults if t >= faults_from)
            sent = sum(1 for t in self._recent_sends if start <= t < end)
            refused = sum(1 for t in self._recent_429 if t >= faults_from)
            enough = faults >= max(policy.untrusted_fault_count, 1, refused)
            if enough and faults >= policy.untrusted_fault_share * max(sent, 1):
                return True
        return False

    def on_success(self) -> None:
        """An answered request: the rate climbs (per request, so by the rules' amount per
        second of full-paced sending)."""
        self._consecutive_429 = 0
        policy = self.policy
        if self._limit_seen or self._climb_held:
            self._pace = min(policy.max_rate, self._pace + policy.increase_per_second / self._pace)
        elif not self._unpaced():
            self._pace = min(
                policy.max_rate, self._pace * policy.slow_start_factor ** (1 / self._pace)
            )

    def on_too_many_requests(self, sent_at: float, retry_after: float | None) -> float:
        """Record a 429 for a request sent at `sent_at`; returns the pause now in force.

        A 429 for a request sent before the current pause began belongs to the same burst:
        it extends nothing and does not escalate the backoff or cut the rate again.
        """
        self.total_429 += 1
        _remember(self._recent_429, self._clock())
        if sent_at >= self._pause_started:
            self._start_pause(sent_at, retry_after)
        pause = self.pause_remaining()
        if self._on_pause is not None:
            self._on_pause(pause)
        return pause

    def _start_pause(self, sent_at: float, retry_after: float | None) -> None:
        policy = self.policy
        self._consecutive_429 += 1
        exponential = policy.backoff_min_seconds * 2 ** (self._consecutive_429 - 1)
        wait = min(policy.backoff_max_seconds, exponential)
        if self._consecutive_429 > 1:  # jittered within the cap, so that it stays spread there
            share = policy.backoff_jitter * self._rng.random()
            capped = exponential * (1 + share) > policy.backoff_max_seconds
            wait = wait * (1 - share) if capped else wait * (1 + share)
        # Retry-After is honoured up to the longest single wait: a server's `1e999` or a
        # date in 2099 must not park the app for the rest of the pass.
        asked = min(retry_after or 0.0, policy.backoff_max_seconds)
        wait = max(wait, policy.backoff_min_seconds, asked)
        now = self._clock()
        resumed_at = self._paused_until  # when the pause before this one ended (0: none)
        self._pause_started = now
        self._paused_until = max(self._paused_until, now + wait)
        self._next_slot = self._paused_until
        if self._consecutive_429 > 1:
            # A 429 again with no answer in between: the server has not recovered, which
            # says nothing of the pace (the pause doubles instead). Cut at each one, from
            # the few sends since the pause, a storm of 20 left 1.7 req/s, stored for every
            # later pass.
            return
        if self.amid_failures(sent_at, since=resumed_at):
            self._spare()
            return
        accepted = self.accepted_rate(sent_at, since=resumed_at)
        ceiling = policy.max_rate if self._unpaced() else self._pace
        self._pace = max(policy.min_rate, policy.decrease_factor * min(accepted, ceiling))
        self._limit_seen = True

    def _spare(self) -> None:
        """A 429 amid failures: taken as part of the server's trouble more than as its
        limit, but it may be a limit the pace climbed past. The pace drops to
        `spared_decrease_factor` x itself, never below `_spare_floor` (that share of the
        pace the gate started at, whatever the number of such 429s), and a slow start
        stops tripling. Left wholly alone, a pace that had climbed a little past a limit
        met amid 10% of 500s stayed there: its 429s, outnumbered by the failures, were each
        spared, and the stored rate went on climbing pass after pass
        (benchmarks/steady_failures.py: 18.1 -> 21.2 req/s under a limit of 20, 0, 0, 0, 7,
        22 x 429 in passes 1-5; now 2 in all). 10% off, with the floor lowered at each
        other cut too, the faulty pass of benchmarks/pace_recovery.py stored 28.9 req/s and
        the next took 1.72x requests / 50; 10% with this floor, 1.39x; 5%, 1.34x (1.25x
        when left alone)."""
        policy = self.policy
        lower = max(self._spare_floor, policy.spared_decrease_factor * self._pace, policy.min_rate)
        self._pace = min(self._pace, lower)
        self._climb_held = True

    def _measured_from(self, refused_at: float, since: float) -> float:
        """Where the span before a 429 that `accepted_rate` measures begins: the window
        before the refused request, or the first send, or `since` (the end of the last
        pause), whichever is latest."""
        first = self._first_send if self._first_send is not None else refused_at
        return max(refused_at - self.policy.window_seconds, since, first)

    def accepted_rate(self, refused_at: float, since: float = 0.0) -> float:
        """Requests/s sent in the `window_seconds` before the request refused at
        `refused_at` (those Batch accepted), over the window or the time since the first
        send (and since `since`, the end of the last pause) when shorter; the pace in force
        when there is too little to measure."""
        start = self._measured_from(refused_at, since)
        sent = sum(1 for t in self._recent_sends if start <= t < refused_at)
        span = refused_at - start
        if span < self.policy.window_seconds / 4 and start == since:
            return self._pace  # too little sending since the pause to measure (a pause
            # inside the window made 0.5 s of sending look like half the rate)
        if sent < 2 or span <= 0:
            return self._pace
        return sent / span
