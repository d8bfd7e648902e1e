"""A minimal protocol-conformant websocket server for testing the reference client before and apart
from vr-serve: it speaks protocol v1 exactly (hello, per-frame results, errors, ping, configure,
handshake refusal with a JSON body) but "classifies" a frame by its declared format and size."""

from __future__ import annotations

import contextlib
import hmac
import http
from collections.abc import AsyncIterator

from vr_recognition.server import protocol as p
from vr_recognition.server.gatekeeper import response
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

MODEL = p.ModelInfo("peer", "1", ("jpeg", "rgb8", "rgba8"), 224, 224, "none")


def refuse(status: http.HTTPStatus, code: p.ErrorCode, message: str) -> Response:
    body = p.encode_server_message(p.ErrorMessage(code.value, message, fatal=True)).encode()
    return response(status, body, "application/json")


async def handle(ws: ServerConnection) -> None:
    hello = None
    settings = p.EffectiveSettings(top_k=1, budget_ms=50.0)
    async for message in ws:
        try:
            if isinstance(message, bytes):
                if hello is None:
                    raise p.ProtocolError(p.ErrorCode.HELLO_REQUIRED, "send hello first")
                frame = p.decode_frame(message)
                label = frame.image_format.wire_name
                reply: p.ServerMessage = p.Result(
                    frame_id=frame.frame_id,
                    capture_time_us=frame.capture_time_us,
                    status=p.Status.OK,
                    top_k=(p.Prediction(label, MODEL.classes.index(label), 1.0),),
                    timings_ms={"total": 0.0},
                    pose=frame.pose,
                    gaze=frame.gaze,
                    model_version=MODEL.version,
                )
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


@contextlib.asynccontextmanager
async def running_peer(token: str | None = None) -> AsyncIterator[str]:
    def check_token(connection: ServerConnection, request: Request) -> Response | None:
        if token is None:
            return None
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return refuse(http.HTTPStatus.UNAUTHORIZED, p.ErrorCode.UNAUTHORIZED, "missing or wrong token")
        return None

    server: Server
    async with serve(handle, "127.0.0.1", 0, compression=None, process_request=check_token) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"
