"""Reference asyncio client for vr-serve, built on the pure codec in server.protocol.

Used by tests, vr-bench and vr-sim, and the model for clients in other languages: connect with
compression off, say hello, send binary frames, read JSON replies. It lives beside the protocol so
that `pip install .[serve]` (no torch) is enough to talk to a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl as ssl_module
import time
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from vr_recognition.server import protocol
from vr_recognition.server.protocol import (
    ClientHello,
    Configure,
    Configured,
    ErrorMessage,
    Frame,
    ImageFormat,
    ModelChanged,
    Ping,
    Pong,
    Pose,
    Result,
    ServerHello,
    ServerMessage,
    StreamSettings,
)


def monotonic_us() -> int:
    """Capture timestamps on the client's monotonic clock; the server only echoes them."""
    return time.monotonic_ns() // 1000


class ServerRefused(ConnectionError):
    """The server refused the connection or the session (bad token, origin, version, too many streams)."""

    def __init__(self, code: str, message: str, http_status: int | None = None) -> None:
        super().__init__(f"{code}: {message}" + (f" (HTTP {http_status})" if http_status else ""))
        self.code = code
        self.message = message
        self.http_status = http_status


class RecognitionClient:
    """One stream to a vr-serve server. Create it with `await RecognitionClient.connect(...)`."""

    def __init__(self, ws: ClientConnection, server_hello: ServerHello) -> None:
        self._ws = ws
        self.server_hello = server_hello
        self.model = server_hello.model
        self.session = server_hello.session
        self._frame_ids = itertools.count()
        self._inbox: asyncio.Queue[ServerMessage | BaseException] = asyncio.Queue()
        self._pending_pongs: dict[int | str, asyncio.Future[Pong]] = {}
        self._pending_configured: list[asyncio.Future[Configured]] = []
        self._ping_ids = itertools.count()
        self._reader = asyncio.create_task(self._read_loop(), name="vr-client-reader")

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        client_name: str = "vr-recognition-python",
        client_version: str = "",
        settings: StreamSettings | None = None,
        token: str | None = None,
        origin: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        open_timeout: float = 10.0,
        max_size: int = protocol.DEFAULT_MAX_MESSAGE_BYTES,
    ) -> RecognitionClient:
        """Open the websocket (compression off: it costs ~10 ms per JPEG), hello, await the server hello."""
        from vr_recognition.server import __version__

        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            ws = await connect(
                url,
                compression=None,
                additional_headers=headers,
                origin=origin,
                ssl=ssl,
                open_timeout=open_timeout,
                max_size=max_size,
                ping_interval=None,
            )
        except InvalidStatus as exc:
            raise _refusal_from_http(exc) from None
        hello = ClientHello(
            client_name=client_name,
            client_version=client_version or __version__,
            settings=settings or StreamSettings(),
        )
        try:
            await ws.send(protocol.encode_client_message(hello))
            reply = protocol.decode_server_message(await asyncio.wait_for(ws.recv(), open_timeout))
        except BaseException:
            await ws.close()
            raise
        if isinstance(reply, ErrorMessage):
            await ws.close()
            raise ServerRefused(reply.code, reply.message)
        if not isinstance(reply, ServerHello):
            await ws.close()
            raise ServerRefused("invalid_message", f"expected the server hello, got {type(reply).__name__}")
        return cls(ws, reply)

    async def __aenter__(self) -> RecognitionClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- sending ------------------------------------------------------------------------------

    async def send_frame(
        self,
        payload: bytes | memoryview,
        *,
        width: int,
        height: int,
        image_format: ImageFormat = ImageFormat.JPEG,
        frame_id: int | None = None,
        capture_time_us: int | None = None,
        pose: Pose | None = None,
        gaze: tuple[float, float] | None = None,
        rows_bottom_up: bool = False,
    ) -> int:
        """Send one frame and return its id (ids count up from 0 unless given)."""
        frame_id = next(self._frame_ids) if frame_id is None else frame_id
        frame = Frame(
            frame_id=frame_id,
            capture_time_us=monotonic_us() if capture_time_us is None else capture_time_us,
            image_format=image_format,
            width=width,
            height=height,
            payload=payload,
            pose=pose,
            gaze=gaze,
            rows_bottom_up=rows_bottom_up,
        )
        await self._ws.send(protocol.encode_frame(frame))
        return frame_id

    async def send_raw(self, message: bytes | str) -> None:
        """Send bytes or text as they are: for tests of how the server handles bad input."""
        await self._ws.send(message)

    async def configure(self, settings: StreamSettings, timeout: float = 5.0) -> Configured:
        """Change stream settings; returns the settings the server now applies."""
        future: asyncio.Future[Configured] = asyncio.get_running_loop().create_future()
        self._pending_configured.append(future)
        await self._ws.send(protocol.encode_client_message(Configure(settings)))
        configured = await asyncio.wait_for(future, timeout)
        self.session = configured.session
        return configured

    async def ping(self, timeout: float = 5.0) -> float:
        """Application-level round trip time in milliseconds."""
        ping_id = next(self._ping_ids)
        future: asyncio.Future[Pong] = asyncio.get_running_loop().create_future()
        self._pending_pongs[ping_id] = future
        start = time.perf_counter()
        await self._ws.send(protocol.encode_client_message(Ping(ping_id, monotonic_us())))
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            self._pending_pongs.pop(ping_id, None)
        return (time.perf_counter() - start) * 1000.0

    # --- receiving ----------------------------------------------------------------------------

    async def recv(self, timeout: float | None = None) -> Result | ErrorMessage | ModelChanged:
        """The next result, error or model change, in arrival order. Raises once the connection is gone."""
        item = await asyncio.wait_for(self._inbox.get(), timeout)
        if isinstance(item, BaseException):
            self._inbox.put_nowait(item)  # every later call sees the same end
            raise item
        return item

    async def results(self) -> AsyncIterator[Result | ErrorMessage | ModelChanged]:
        """Iterate over replies until the connection closes normally."""
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed:
                return

    async def _read_loop(self) -> None:
        try:
            async for text in self._ws:
                message = protocol.decode_server_message(text)
                if isinstance(message, Pong):
                    future = self._pending_pongs.pop(message.id, None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif isinstance(message, Configured):
                    if self._pending_configured:
                        future = self._pending_configured.pop(0)
                        if not future.done():
                            future.set_result(message)
                else:
                    if isinstance(message, ModelChanged):
                        self.model = message.model
                    self._inbox.put_nowait(message)
            await self._ws.recv()  # the loop ended: this raises the ConnectionClosed that says how
        except BaseException as exc:  # the end of the stream is delivered to recv() callers
            self._inbox.put_nowait(exc)
            for future in [*self._pending_pongs.values(), *self._pending_configured]:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError("closed"))
            if isinstance(exc, asyncio.CancelledError):
                raise

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def _refusal_from_http(exc: InvalidStatus) -> ServerRefused:
    """vr-serve refuses handshakes with a JSON error body; keep its code for the caller."""
    response = exc.response
    body = bytes(response.body or b"")
    try:
        message = protocol.decode_server_message(body)
    except protocol.ProtocolError:
        message = None
    if isinstance(message, ErrorMessage):
        return ServerRefused(message.code, message.message, response.status_code)
    return ServerRefused("http_error", body.decode("utf-8", "replace")[:200], response.status_code)
