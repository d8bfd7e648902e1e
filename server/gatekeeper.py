"""The handshake gate and the plain-HTTP endpoints that share vr-serve's port.

Everything here runs before a websocket exists, so refusals are cheap: HTTP 401/403/503 with a JSON
body in the shape of a protocol `error` message (docs/protocol.md 5.3). /healthz answers 200 once a
model is warm (503 before and while stopping); /metrics is the Prometheus exposition.

The gate is given its settings and a function that reports the server's state; it never sees the
server object. Who may open a stream is decided by `admission.refusal`, the same rule the server
applies again when hello arrives.
"""

from __future__ import annotations

import hmac
import http
import json
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from vr_recognition.server import protocol as p
from vr_recognition.server.admission import ServerState, refusal
from vr_recognition.server.metrics import ServerMetrics


class Gatekeeper:
    def __init__(
        self,
        *,
        token: str | None,
        allowed_origins: tuple[str, ...],
        max_streams: int,
        metrics: ServerMetrics,
        state: Callable[[], ServerState],
    ) -> None:
        self.token = token
        self.allowed_origins = allowed_origins
        self.max_streams = max_streams
        self.metrics = metrics
        self.state = state

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """None lets the websocket handshake go on; a Response ends the request here."""
        url = urlsplit(request.path)
        if url.path == "/healthz":
            return self.healthz()
        if url.path == "/metrics":
            return response(http.HTTPStatus.OK, self.metrics.exposition(), self.metrics.content_type)
        state = self.state()
        if state.shutting_down or state.model is None:  # say so before asking for credentials
            return self.refuse_503(state)
        if self.token is not None and not self.token_ok(request, url.query):
            return self.refuse(
                http.HTTPStatus.UNAUTHORIZED, p.ErrorCode.UNAUTHORIZED, "missing or wrong token"
            )
        origin = request.headers.get("Origin")
        if self.allowed_origins and origin is not None and origin not in self.allowed_origins:
            return self.refuse(
                http.HTTPStatus.FORBIDDEN,
                p.ErrorCode.FORBIDDEN_ORIGIN,
                f"origin {origin[:100]!r} is not allowed",
            )
        return self.refuse_503(state)

    def refuse_503(self, state: ServerState) -> Response | None:
        why = refusal(state, self.max_streams)
        if why is None:
            return None
        return self.refuse(http.HTTPStatus.SERVICE_UNAVAILABLE, why.code, why.message)

    def token_ok(self, request: Request, query: str) -> bool:
        """Bearer header, or ?token= for browsers (which cannot set headers); constant-time compare."""
        assert self.token is not None
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        if not given:
            given = (parse_qs(query).get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())

    def refuse(self, status: http.HTTPStatus, code: p.ErrorCode, message: str) -> Response:
        self.metrics.refused.labels(code.value).inc()
        body = p.encode_server_message(p.ErrorMessage(code.value, message, fatal=True)).encode()
        return response(status, body, "application/json")

    def healthz(self) -> Response:
        state = self.state()
        model = state.model
        label = "stopping" if state.shutting_down else ("ok" if model is not None else "starting")
        body: dict = {"status": label, "streams": state.streams}
        if model is not None:
            body["model"] = {"name": model.name, "version": model.version, "provider": model.provider}
        healthy = model is not None and not state.shutting_down
        status = http.HTTPStatus.OK if healthy else http.HTTPStatus.SERVICE_UNAVAILABLE
        return response(status, json.dumps(body).encode(), "application/json")


def response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
    )
    return Response(status.value, status.phrase, headers, body)
