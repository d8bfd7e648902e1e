"""A small HTTP/1.1 client for the load generator: keep-alive connections, one request per connection
at a time, a pool per stream.

What a sensible headset HTTP client does: it reuses its connection (no TCP handshake per frame) and,
when a request is still out and the next frame is due, opens (or reuses) another connection rather
than pipelining behind the slow one. Written on asyncio streams (standard library only) so the
generator's own cost per request stays small and the same in every peer venv.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class HttpError(Exception):
    """The server broke the HTTP exchange (closed early, sent something unparseable)."""


class HttpPool:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def warm(self, connections: int = 1) -> None:
        """Open connections ahead of the clock, as a client would at start-up."""
        for _ in range(connections):
            self._idle.append(await self._open())

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        """(status, body) of one POST on an idle keep-alive connection (or a new one)."""
        reader, writer = self._idle.pop() if self._idle else await self._open()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
        ).encode("ascii")
        try:
            writer.write(head + body)
            await writer.drain()
            status, keep, payload = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from None
        except BaseException:  # cancelled mid-exchange: the connection's state is unknown
            writer.close()
            raise
        if keep:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return status, payload

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunks.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(chunk[:-2] for chunk in chunks)
    else:
        raise ValueError("response without Content-Length or chunked encoding")
    keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
    return int(status), keep, body
