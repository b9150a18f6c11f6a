"""Starting `campaign-sync simulate` in its own process for a benchmark."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_simulator(*options: str) -> tuple[subprocess.Popen[bytes], str]:
    """The simulator (API key KEY, REST key SECRET) and its URL, once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign_sync", "simulate", "--port", str(port),
         "--api-key", "KEY", "--rest-api-key", "SECRET", *options],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # generating 100,000 campaigns takes a while
    while True:
        try:
            httpx.get(f"{url}/_sim/stats")
            return process, url
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.terminate()
                raise RuntimeError("the simulator did not start") from None
            time.sleep(0.2)
