"""A minimal protocol-conformant websocket server for testing the reference client before and apart
from vr-serve: it speaks protocol v1 exactly (hello, per-frame results, errors, ping, configure,
handshake refusal with a JSON body) but "classifies" a frame by its declared format and size.

With `seconds_per_frame` it is also a server slower than its clients on any machine, for testing a
load generator: frames are answered one at a time, each after that fixed sleep, and like vr-serve it
keeps only the newest waiting frame (the one it replaces is answered `dropped_stale` at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import http
import time
from collections.abc import AsyncIterator

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from vr_recognition.server import protocol as p

MODEL = p.ModelInfo("peer", "1", ("jpeg", "rgb8", "rgba8"), 224, 224, "none")


def refuse(status: http.HTTPStatus, code: p.ErrorCode, message: str) -> Response:
    """A refused handshake with the protocol's JSON error body (built here: the peer uses only the codec)."""
    body = p.encode_server_message(p.ErrorMessage(code.value, message, fatal=True)).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)


def answer(
    frame: p.Frame, status: p.Status = p.Status.OK, timings_ms: dict[str, float] | None = None
) -> p.Result:
    label = frame.image_format.wire_name
    return p.Result(
        frame_id=frame.frame_id,
        capture_time_us=frame.capture_time_us,
        status=status,
        top_k=(p.Prediction(label, MODEL.classes.index(label), 1.0),) if status is p.Status.OK else (),
        timings_ms={"total": 0.0} if timings_ms is None else timings_ms,
        pose=frame.pose,
        gaze=frame.gaze,
        model_version=MODEL.version,
    )


class SlowLane:
    """One stream's frames, answered one at a time after a fixed `seconds` each: a cost in time, not
    arithmetic. Only the newest waiting frame is kept, as vr-serve's one-slot mailbox does."""

    def __init__(self, ws: ServerConnection, seconds: float) -> None:
        self.ws, self.seconds = ws, seconds
        self.waiting: tuple[p.Frame, float] | None = None  # (frame, arrival on time.perf_counter())
        self.ready = asyncio.Event()
        self.worker = asyncio.create_task(self._work())

    async def put(self, frame: p.Frame) -> None:
        now = time.perf_counter()
        stale, self.waiting = self.waiting, (frame, now)
        self.ready.set()
        if stale is not None:
            timings = {"total": (now - stale[1]) * 1000.0}
            await self.ws.send(p.encode_server_message(answer(stale[0], p.Status.DROPPED_STALE, timings)))

    async def _work(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.ready.wait()
                self.ready.clear()
                if self.waiting is None:
                    continue
                (frame, arrived), self.waiting = self.waiting, None
                taken = time.perf_counter()
                await asyncio.sleep(self.seconds)
                done = time.perf_counter()
                timings = {
                    "queue": (taken - arrived) * 1000.0,
                    "infer": (done - taken) * 1000.0,
                    "total": (done - arrived) * 1000.0,
                }
                await self.ws.send(p.encode_server_message(answer(frame, timings_ms=timings)))

    async def close(self) -> None:
        self.worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.worker


async def handle(ws: ServerConnection, seconds_per_frame: float = 0.0) -> None:
    hello = None
    settings = p.EffectiveSettings(top_k=1, budget_ms=50.0)
    lane = SlowLane(ws, seconds_per_frame) if seconds_per_frame > 0 else None
    try:
        async for message in ws:
            try:
                if isinstance(message, bytes):
                    if hello is None:
                        raise p.ProtocolError(p.ErrorCode.HELLO_REQUIRED, "send hello first")
                    frame = p.decode_frame(message)
                    if lane is not None:
                        await lane.put(frame)  # answered by the lane, later
                        continue
                    reply: p.ServerMessage = answer(frame)
                else:
                    control = p.decode_client_message(message)
                    if isinstance(control, p.ClientHello):
                        version = p.negotiate_version(control)
                        hello = control
                        asked = control.settings
                        settings = p.EffectiveSettings(asked.top_k or 1, asked.budget_ms or 50.0, asked.fps)
                        reply = p.ServerHello(version, "peer", "0", MODEL, settings, p.Limits())
                    elif hello is None:
                        raise p.ProtocolError(p.ErrorCode.HELLO_REQUIRED, "send hello first")
                    elif isinstance(control, p.Ping):
                        reply = p.Pong(control.id, control.client_time_us, 1)
                    else:
                        asked = control.settings
                        settings = p.EffectiveSettings(asked.top_k or settings.top_k, asked.budget_ms or 50.0)
                        reply = p.Configured(settings)
            except p.ProtocolError as exc:
                if exc.code is p.ErrorCode.UNSUPPORTED_VERSION:
                    fatal = p.ErrorMessage(exc.code.value, exc.message, fatal=True)
                    await ws.send(p.encode_server_message(fatal))
                    await ws.close(p.CloseCode.PROTOCOL_ERROR, exc.code.value)
                    return
                reply = p.error_for(exc)
            await ws.send(p.encode_server_message(reply))
    finally:
        if lane is not None:
            await lane.close()


@contextlib.asynccontextmanager
async def running_peer(token: str | None = None, seconds_per_frame: float = 0.0) -> AsyncIterator[str]:
    """The peer on a loopback port; yields its ws:// URL. `seconds_per_frame` > 0 makes it slow."""

    def check_token(connection: ServerConnection, request: Request) -> Response | None:
        if token is None:
            return None
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return refuse(http.HTTPStatus.UNAUTHORIZED, p.ErrorCode.UNAUTHORIZED, "missing or wrong token")
        return None

    server: Server
    handler = functools.partial(handle, seconds_per_frame=seconds_per_frame)
    async with serve(handler, "127.0.0.1", 0, compression=None, process_request=check_token) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"
