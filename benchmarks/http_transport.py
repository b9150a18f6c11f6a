"""The HTTP requests of an initial pass, through each transport choice, against a bare
httpx client (default transport) making the same requests in the same run.

The requests are a pass's: both campaign types side by side, each sweeping its list
(pages of 100 at offsets 0, 95, 190, … until an empty page), and every listed campaign's
detail, `--concurrency` detail requests in flight per app (CAMPAIGN_SYNC_CONCURRENCY's
default: 8). The simulator runs in its own process, so `time.process_time()` is the
client's CPU only. Variants run in turn, the order reversed every round so that the
machine's drift cancels; the median of the rounds is printed with its ratio to the bare
client's median (issue #14, target 1: wall <= 1.0x, CPU <= 1.2x the bare client).

    python benchmarks/http_transport.py [--push 1000] [--in-app 1000] [--rounds 3]

The aiohttp variants run when `httpx-aiohttp` is installed (`pip install httpx-aiohttp`;
not a dependency: docs/performance.md says why).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
from _harness import start_simulator

from campaign_sync.batch.client import BatchClient, ClientEvent, ClientOptions, Responded
from campaign_sync.config import Settings
from campaign_sync.domain import CampaignType

PAGE, STEP = 100, 95  # the sweep's page size and stride (5 entries of overlap)
HEADERS = {"X-Authorization": "SECRET", "Content-Type": "application/json"}
WALL_TARGET, CPU_TARGET = 1.0, 1.2


@dataclass
class Figures:
    walls: list[float]
    cpus: list[float]
    requests: int = 0


async def bare_pass(client: httpx.AsyncClient, concurrency: int) -> int:
    """A pass's requests through `client`; returns how many were made."""
    slots = asyncio.Semaphore(concurrency)
    made = [0]

    async def get(path: str, params: dict[str, Any] | None = None) -> Any:
        async with slots:
            response = await client.get(path, params=params)
        made[0] += 1
        response.raise_for_status()
        return response.json()

    async def one_type(segment: str) -> None:
        details: list[asyncio.Task[Any]] = []
        offset, seen = 0, set[str]()
        while True:
            page = await get(f"/1.1/KEY/{segment}/list", {"from": offset, "limit": PAGE})
            if not page:
                break
            for entry in page:
                token = entry["campaign_token"]
                if token not in seen:
                    seen.add(token)
                    details.append(asyncio.create_task(get(f"/1.1/KEY/{segment}/{token}")))
            offset += STEP
        await asyncio.gather(*details)

    await asyncio.gather(one_type("campaigns"), one_type("in-app-campaigns"))
    return made[0]


async def our_pass(client: BatchClient) -> int:
    """The same requests through our client (rate gate, retry policy, parsing, hooks)."""
    made = [0]

    def count(event: ClientEvent) -> None:
        if isinstance(event, Responded):
            made[0] += 1

    client.hooks.append(count)

    async def one_type(campaign_type: CampaignType) -> None:
        details = []
        async for page in client.sweep(campaign_type):
            for entry in page.entries:
                token = entry["campaign_token"]
                details.append(asyncio.create_task(client.view_campaign(campaign_type, token)))
        await asyncio.gather(*details)

    await asyncio.gather(one_type(CampaignType.PUSH), one_type(CampaignType.IN_APP))
    return made[0]


def variants(base_url: str, concurrency: int) -> dict[str, Callable[[], Coroutine[Any, Any, int]]]:
    """Each transport choice: a coroutine function that makes one pass's requests."""
    tuned = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=30
    )

    def bare(make_transport: Callable[[], httpx.AsyncBaseTransport] | None) -> Any:
        async def run() -> int:
            transport = make_transport() if make_transport else None
            async with httpx.AsyncClient(
                base_url=base_url, headers=HEADERS, transport=transport
            ) as client:
                return await bare_pass(client, concurrency)

        return run

    def ours(make_transport: Callable[[], httpx.AsyncBaseTransport] | None) -> Any:
        async def run() -> int:
            options = ClientOptions(base_url=base_url, concurrency=concurrency)
            transport = make_transport() if make_transport else None
            async with BatchClient(
                app="bench", api_key="KEY", rest_api_key="SECRET", options=options,
                transport=transport,
            ) as client:  # fmt: skip
                return await our_pass(client)

        return run

    def tuned_default() -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport(limits=tuned, http1=True, http2=False)

    found: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "bare httpx, default transport (reference)": bare(None),
        "bare httpx, default transport tuned": bare(tuned_default),
    }
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        print("httpx-aiohttp is not installed: its variants are skipped")
    else:

        def aiohttp_transport() -> httpx.AsyncBaseTransport:
            return AiohttpTransport(limits=tuned)

        found["bare httpx, aiohttp transport"] = bare(aiohttp_transport)
        found["BatchClient, aiohttp transport"] = ours(aiohttp_transport)
    found["BatchClient, its own transport"] = ours(None)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--push", type=int, default=1000)
    parser.add_argument("--in-app", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, default=Settings.model_fields["concurrency"].default
    )
    parser.add_argument("--only", help="run only the variants whose name contains this")
    args = parser.parse_args()
    simulator, base_url = start_simulator(
        "--push", str(args.push), "--in-app", str(args.in_app), "--latency-ms", str(args.latency_ms)
    )
    try:
        runs = variants(base_url, args.concurrency)
        if args.only:
            reference = next(iter(runs))
            runs = {k: v for k, v in runs.items() if k == reference or args.only in k}
        figures = {name: Figures([], []) for name in runs}
        asyncio.run(next(iter(runs.values()))())  # warm-up: imports, the simulator's caches
        loads = [os.getloadavg()[0]]
        for round_number in range(args.rounds):
            order = list(runs) if round_number % 2 == 0 else list(reversed(runs))
            for name in order:
                started, cpu_started = time.monotonic(), time.process_time()
                made = asyncio.run(runs[name]())
                figures[name].walls.append(time.monotonic() - started)
                figures[name].cpus.append(time.process_time() - cpu_started)
                figures[name].requests = made
            loads.append(os.getloadavg()[0])
    finally:
        simulator.terminate()
        simulator.wait()
    report(figures, args, loads)


def report(figures: dict[str, Figures], args: argparse.Namespace, loads: list[float]) -> None:
    reference = next(iter(figures.values()))
    ref_wall, ref_cpu = statistics.median(reference.walls), statistics.median(reference.cpus)
    latency = args.latency_ms / 1000
    print(
        f"{args.push} push + {args.in_app} in-app at {args.latency_ms:g} ms, "
        f"{args.concurrency} in flight, median of {args.rounds} rounds; "
        f"1-min load average {min(loads):.2f}-{max(loads):.2f}"
    )
    print(
        f"{'variant':44} {'requests':>8} {'wall s':>7} {'ratio':>6} {'CPU s':>6} {'ratio':>6}"
        "  every round's wall/CPU"
    )
    for name, figure in figures.items():
        wall, cpu = statistics.median(figure.walls), statistics.median(figure.cpus)
        print(
            f"{name:44} {figure.requests:8d} {wall:7.2f} {wall / ref_wall:6.2f} "
            f"{cpu:6.2f} {cpu / ref_cpu:6.2f}  "
            + " ".join(f"{w:.1f}/{c:.2f}" for w, c in zip(figure.walls, figure.cpus, strict=True))
        )
    details = args.push + args.in_app
    bound = (details * latency) / args.concurrency
    print(f"latency bound (details x latency / concurrency, lists overlap): {bound:.2f}s")
    ours = figures.get("BatchClient, its own transport")
    if ours:
        wall_ratio = statistics.median(ours.walls) / ref_wall
        cpu_ratio = statistics.median(ours.cpus) / ref_cpu
        met = round(wall_ratio, 2) <= WALL_TARGET and round(cpu_ratio, 2) <= CPU_TARGET
        verdict = "PASS" if met else "FAIL"
        print(
            f"BatchClient vs bare client: wall {wall_ratio:.2f} (target <= {WALL_TARGET}), "
            f"CPU {cpu_ratio:.2f} (target <= {CPU_TARGET}): {verdict}"
        )


if __name__ == "__main__":
    main()
