"""Politeness: one shared pause per app after a 429, and an adaptive request rate."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import pytest

from campaign_sync.batch.client import BatchClient, ClientOptions, Paused
from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.batch.ratelimit import LearnedRate, RateGate, RatePolicy
from campaign_sync.batch.retry import RetryBudget
from campaign_sync.simulator import Simulator, SimulatorServer
from tests.conftest import API_KEY, CANARY_REST_KEY


def sim_client(server: SimulatorServer, *, floor: float, concurrency: int = 8) -> BatchClient:
    return BatchClient(
        app="ios",
        api_key=API_KEY,
        rest_api_key=CANARY_REST_KEY,
        options=ClientOptions(
            base_url=server.url,
            concurrency=concurrency,
            rate=RatePolicy(
                backoff_min_seconds=floor,
                backoff_max_seconds=floor * 4,
                slow_start_rate=200,  # unpaced until the first 429: all in flight together
            ),
            retry=RetryBudget(max_attempts=20, max_seconds=60),
        ),
    )


def test_one_429_pauses_every_request_of_the_app(
    simulator: Simulator, sim_server: SimulatorServer
) -> None:
    floor = 0.4
    tokens = simulator.store(CampaignType.PUSH).tokens()[:40]
    simulator.script("view push", [429])
    paused_at: list[float] = []
    sent_at: list[float] = []

    async def record_send(request: object) -> None:
        sent_at.append(time.monotonic())

    async def run() -> None:
        async with sim_client(sim_server, floor=floor) as client:
            client.hooks.append(
                lambda event: (
                    paused_at.append(time.monotonic()) if isinstance(event, Paused) else None
                )
            )
            client._http.event_hooks["request"].append(record_send)
            await asyncio.gather(*(client.view_push(t) for t in tokens))

    asyncio.run(run())
    assert len(paused_at) == 1
    during_pause = [t for t in sent_at if paused_at[0] < t < paused_at[0] + floor]
    assert during_pause == [], f"{len(during_pause)} requests were sent during the pause"
    assert len(sent_at) == 41
    assert simulator.count("view push", 200) == 40
    assert simulator.count("view push", 429) == 1


def test_a_burst_of_429s_pauses_once_instead_of_escalating(
    simulator: Simulator, sim_server: SimulatorServer
) -> None:
    floor = 0.3
    simulator.knobs.latency_seconds = 0.05  # all eight are in flight together
    simulator.script("view push", [429] * 8)
    tokens = simulator.store(CampaignType.PUSH).tokens()[:8]

    pause_ends: list[float] = []

    async def run() -> RateGate:
        async with sim_client(sim_server, floor=floor) as client:
            client.hooks.append(
                lambda event: (
                    pause_ends.append(client.gate._paused_until)
                    if isinstance(event, Paused)
                    else None
                )
            )
            await asyncio.gather(*(client.view_push(t) for t in tokens))
            return client.gate

    gate = asyncio.run(run())
    assert gate.total_429 == 8 and len(pause_ends) == 8
    assert len(set(pause_ends)) == 1, "a burst of 429s extended or escalated the pause"
    assert simulator.count("view push", 200) == 8


def test_a_429_cuts_the_rate_to_nine_tenths_and_it_creeps_back_on_success() -> None:
    now = [100.0]
    gate = RateGate(
        RatePolicy(
            backoff_min_seconds=5, min_rate=0.5, max_rate=50, increase_per_second=1.0,
            slow_start_rate=20, slow_start_factor=1.0,
        ),
        clock=lambda: now[0],
        sleep=advance(now),
    )  # fmt: skip
    assert gate.rate is None  # no limit learned until Batch says so

    async def send(count: int) -> None:
        for _ in range(count):
            await gate.acquire()
            now[0] += 0.05  # 20 requests/s

    asyncio.run(send(40))
    pause = gate.on_too_many_requests(sent_at=now[0], retry_after=None)
    assert pause >= 5
    first = gate.rate
    assert first is not None and 17 <= first <= 19, first  # 0.9 x the 20/s Batch accepted
    again = gate.on_too_many_requests(sent_at=now[0] + 0.001 + pause, retry_after=None)
    assert again >= 2 * 5 and gate.rate == first  # no answer between: the pause doubles
    gate.on_success()
    now[0] += again + 1  # past the pause
    asyncio.run(send(40))
    gate.on_too_many_requests(sent_at=now[0], retry_after=None)
    assert gate.rate is not None and gate.rate < first
    lowered = gate.rate
    for _ in range(50):
        gate.on_success()
    assert gate.rate > lowered
    for _ in range(100_000):
        gate.on_success()
    assert gate.rate == 50  # capped


def advance(now: list[float]) -> Callable[[float], Awaitable[None]]:
    """A sleep that moves the fake clock instead of waiting."""

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    return sleep


def fake_clock_gate(
    policy: RatePolicy, rate: float, now: list[float], rng: random.Random | None = None
) -> RateGate:
    """A gate that learned `rate` earlier, on the fake clock `now` (its sleeps move it)."""
    learned = LearnedRate(rate, limit_seen=True)
    return RateGate(policy, learned=learned, clock=lambda: now[0], sleep=advance(now), rng=rng)


def test_a_storm_of_429s_does_not_cut_the_rate_to_nothing() -> None:
    """One answer, then 20 x 429 each retried right after its pause: each 429 cut the
    pace to 0.9 x the few sends since the pause, and 1.7 req/s was stored for every later
    pass. Now one cut for the storm; the pause doubles up to its longest."""
    now = [100.0]
    policy = RatePolicy(backoff_min_seconds=0.5, backoff_max_seconds=1.0, backoff_jitter=0.0)
    gate = fake_clock_gate(policy, 50.0, now)

    async def one() -> float:
        sent = await gate.acquire()
        now[0] += 0.02
        return sent

    sent = asyncio.run(one())
    gate.on_success()
    pauses = []
    for _ in range(20):
        sent = asyncio.run(one())
        pauses.append(gate.on_too_many_requests(sent_at=sent, retry_after=None))
        now[0] += pauses[-1]
    assert gate.rate == pytest.approx(45.0, abs=0.01)  # 0.9 x the pace: too little to measure
    assert pauses[:3] == [0.5, 1.0, 1.0] and max(pauses) == 1.0


@pytest.mark.parametrize("gap_seconds", [0.5, 2.0])
def test_a_pause_inside_the_window_is_not_counted_as_sending(gap_seconds: float) -> None:
    """Sporadic 429s from a server with no limit (a 2% fault rate): the window before
    each held the last pause, so 0.5 s of sending at 100/s read as 50 accepted, and each
    cut nearly halved the pace (600 requests took 68 s instead of 3)."""
    now = [100.0]
    gate = fake_clock_gate(
        RatePolicy(backoff_min_seconds=gap_seconds, backoff_jitter=0.0), 100.0, now
    )

    async def send(count: int) -> float:
        sent = 0.0
        for _ in range(count):
            sent = await gate.acquire()
            gate.on_success()
            now[0] += 0.01
        return sent

    for _ in range(5):
        sent = asyncio.run(send(50))  # 0.5 s at 100/s, then a 429
        pause = gate.on_too_many_requests(sent_at=sent, retry_after=None)
        now[0] += pause
    assert gate.rate is not None and gate.rate > 100 * 0.9**5 * 0.95  # ~10% a 429, no more


@pytest.mark.parametrize("seed", range(5))
def test_no_pause_is_longer_than_the_longest_wait_jitter_included(seed: int) -> None:
    """The 10% jitter was applied after the cap: with the longest wait at 1 s, pauses
    of 1.058 s and 1.102 s."""
    now = [100.0]
    policy = RatePolicy(backoff_min_seconds=0.5, backoff_max_seconds=1.0, backoff_jitter=0.1)
    gate = fake_clock_gate(policy, 50.0, now, random.Random(seed))
    pauses = []
    for _ in range(6):
        pauses.append(
            gate.on_too_many_requests(sent_at=asyncio.run(gate.acquire()), retry_after=None)
        )
        now[0] += pauses[-1]
    assert pauses[0] == 0.5 and 0.5 < max(pauses) <= 1.0
    assert len(set(pauses[2:])) > 1, "at the cap every pause was the same: clients in step"


def test_an_answer_that_is_no_429_ends_a_streak_of_them() -> None:
    """Only a 2xx ended the streak: between the 404s of deletion confirmations every
    later 429 was a repeat, so the rate was never cut again and the pauses doubled to
    120 s (1,000 requests took 14,584 s against a 20/s limit, 153 s before)."""
    now = [100.0]
    policy = RatePolicy(backoff_min_seconds=5.0, backoff_jitter=0.0)
    gate = fake_clock_gate(policy, 50.0, now)

    async def send(count: int) -> float:
        sent = 0.0
        for _ in range(count):
            sent = await gate.acquire()
            gate.on_answer()  # a 404 each
            now[0] += 0.02
        return sent

    first = gate.on_too_many_requests(sent_at=asyncio.run(send(60)), retry_after=None)
    now[0] += first
    cut = gate.rate
    second = gate.on_too_many_requests(sent_at=asyncio.run(send(60)), retry_after=None)
    assert (first, second) == (5.0, 5.0)  # not doubled: answers came between
    assert cut is not None and gate.rate is not None and gate.rate < cut  # cut again


def test_a_long_pass_settles_under_the_servers_limit(
    simulator: Simulator, sim_server: SimulatorServer
) -> None:
    simulator.knobs.rate_limit_per_second = 40
    simulator.knobs.rate_limit_burst = 5
    tokens = simulator.store(CampaignType.PUSH).tokens() * 4  # 240 requests

    async def run() -> RateGate:
        async with sim_client(sim_server, floor=0.1) as client:
            await asyncio.gather(*(client.view_push(t) for t in tokens))
            return client.gate

    gate = asyncio.run(run())
    throttled = simulator.count("view push", 429)
    assert simulator.count("view push", 200) == 240
    assert gate.rate is not None and gate.rate < 80, gate.rate
    assert throttled < 60, f"{throttled} 429s: the rate did not adapt"
