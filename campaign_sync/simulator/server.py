"""Serving a `Simulator` over real HTTP on loopback: in a background thread for tests and
the demo, or in the foreground for `campaign-sync simulate`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from types import TracebackType

import uvicorn

from campaign_sync.simulator.app import Simulator


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this; without it Nagle + delayed ACK add 40 ms per answer.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class SimulatorServer:
    """A real HTTP server for one `Simulator`; port 0 picks a free port."""

    def __init__(self, simulator: Simulator, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self._socket = _bind(host, port)
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            simulator.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="httptools",
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _main(self) -> None:
        churn = asyncio.ensure_future(self.simulator.churn_forever())
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            churn.cancel()

    def run(self) -> None:
        """Serve in this thread until interrupted."""
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._main())

    def start(self) -> SimulatorServer:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main()), name="batch-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Batch simulator did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
