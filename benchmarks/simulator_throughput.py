"""How many requests per second the simulator serves on loopback (target: 1,500).

The simulator runs in its own process (as `campaign-sync simulate`); the load comes from a
lean asyncio client with keep-alive connections, so the client is not what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time

TARGET = 1500.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "campaign_sync", "simulate", "--port", str(port),
         "--api-key", "KEY", "--rest-api-key", "SECRET", "--push", "500", "--in-app", "300"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import httpx

        for _ in range(100):
            try:
                tokens = [
                    e["campaign_token"]
                    for e in httpx.get(
                        f"http://127.0.0.1:{port}/1.1/KEY/campaigns/list?limit=100",
                        headers={"X-Authorization": "SECRET"},
                    ).json()
                ]
                break
            except httpx.TransportError:
                time.sleep(0.1)
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
