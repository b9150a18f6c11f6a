"""How many requests per second the simulator serves on loopback (target: 1,500).

The simulator runs in its own process (as `campaign-sync simulate`); the load comes from a
lean asyncio client with keep-alive connections, so the client is not what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from _harness import start_simulator

TARGET = 1500.0


async def worker(port: int, paths: list[str], deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    index = 0
    while time.monotonic() < deadline:
        path = paths[index % len(paths)]
        index += 1
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Authorization: SECRET\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        status = int(head.split(b" ", 2)[1])
        counts[0 if status == 200 else 1] += 1
    writer.close()


async def load(port: int, seconds: float, connections: int, tokens: list[str]) -> list[int]:
    paths = [f"/1.1/KEY/campaigns/{t}" for t in tokens] + [
        f"/1.1/KEY/campaigns/list?from={offset}&limit=100" for offset in range(0, 400, 95)
    ]
    counts = [0, 0]
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(worker(port, paths, deadline, counts) for _ in range(connections)))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    server, url = start_simulator("--push", "500", "--in-app", "300")
    port = int(url.rsplit(":", 1)[1])
    try:
        entries = httpx.get(
            f"{url}/1.1/KEY/campaigns/list?limit=100", headers={"X-Authorization": "SECRET"}
        ).json()
        tokens = [entry["campaign_token"] for entry in entries]
        asyncio.run(load(port, 1.0, args.connections, tokens))  # warm-up
        started = time.monotonic()
        ok, other = asyncio.run(load(port, args.seconds, args.connections, tokens))
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait()
    rate = (ok + other) / elapsed
    print(f"requests: {ok + other} ({other} not 200) in {elapsed:.1f}s")
    print(f"throughput: {rate:.0f} req/s; target {TARGET:.0f} req/s; ratio {rate / TARGET:.2f}")


if __name__ == "__main__":
    main()
