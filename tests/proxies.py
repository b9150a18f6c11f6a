"""Two tiny proxies on loopback for the proxy tests: an HTTP forward proxy (absolute-form
requests, RFC 9112 section 3.2.2) and a SOCKS5 proxy (RFC 1928, no authentication, CONNECT
only). Each counts what it carried; each runs on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


class _Proxy:
    def __init__(self) -> None:
        self.carried = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def running(self) -> Iterator[_Proxy]:
        self._thread.start()
        self._ready.wait(5)
        try:
            yield self
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


class HttpProxy(_Proxy):
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            request_line, _, rest = head.partition(b"\r\n")
            method, target, version = request_line.decode().split(" ")
            url = urlsplit(target)
            length = 0
            for line in rest.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
            origin = url.path + (f"?{url.query}" if url.query else "")
            up_writer.write(f"{method} {origin} {version}\r\n".encode() + rest + body)
            await up_writer.drain()
            self.carried += 1
            response = await up_reader.readuntil(b"\r\n\r\n")
            size = next(
                int(line.split(b":")[1])
                for line in response.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            writer.write(response + await up_reader.readexactly(size))
            await writer.drain()
            up_writer.close()


class Socks5Proxy(_Proxy):
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, methods = await reader.readexactly(2)
        await reader.readexactly(methods)
        writer.write(b"\x05\x00")  # no authentication
        _, _command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = ".".join(str(b) for b in await reader.readexactly(4))
        elif kind == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        else:
            host = "::1"
            await reader.readexactly(16)
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        up_reader, up_writer = await asyncio.open_connection(host, port)
        self.carried += 1
        writer.write(b"\x05\x00\x00\x01" + bytes(4) + struct.pack("!H", 0))
        await writer.drain()
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
