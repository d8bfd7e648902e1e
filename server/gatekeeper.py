"""The handshake gate and the plain-HTTP endpoints that share vr-serve's port.

Everything here runs before a websocket exists, so refusals are cheap: HTTP 401/403/503 with a JSON
body in the shape of a protocol `error` message (docs/protocol.md 5.3). /healthz answers 200 once a
model is warm (503 before and while stopping); /metrics is the Prometheus exposition.
"""

from __future__ import annotations

import hmac
import http
import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from vr_recognition.server import protocol as p
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

if TYPE_CHECKING:
    from vr_recognition.server.app import RecognitionServer


class Gatekeeper:
    def __init__(self, server: RecognitionServer) -> None:
        self.server = server
        self.config = server.config
        self.metrics = server.metrics

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """None lets the websocket handshake go on; a Response ends the request here."""
        url = urlsplit(request.path)
        if url.path == "/healthz":
            return self.healthz()
        if url.path == "/metrics":
            return response(http.HTTPStatus.OK, self.metrics.exposition(), self.metrics.content_type)
        unavailable = http.HTTPStatus.SERVICE_UNAVAILABLE
        if self.server.shutting_down:
            return self.refuse(unavailable, p.ErrorCode.SHUTTING_DOWN, "server is stopping")
        if self.server.model is None:
            return self.refuse(unavailable, p.ErrorCode.MODEL_UNAVAILABLE, "model is loading")
        if self.config.token is not None and not self.token_ok(request, url.query):
            return self.refuse(
                http.HTTPStatus.UNAUTHORIZED, p.ErrorCode.UNAUTHORIZED, "missing or wrong token"
            )
        origin = request.headers.get("Origin")
        if self.config.allowed_origins and origin is not None and origin not in self.config.allowed_origins:
            return self.refuse(
                http.HTTPStatus.FORBIDDEN,
                p.ErrorCode.FORBIDDEN_ORIGIN,
                f"origin {origin[:100]!r} is not allowed",
            )
        if self.server.stream_count >= self.config.max_streams:
            return self.refuse(
                unavailable,
                p.ErrorCode.TOO_MANY_STREAMS,
                f"the server's limit of {self.config.max_streams} streams is reached",
            )
        return None

    def token_ok(self, request: Request, query: str) -> bool:
        """Bearer header, or ?token= for browsers (which cannot set headers); constant-time compare."""
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        if not given:
            given = (parse_qs(query).get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.config.token.encode())

    def refuse(self, status: http.HTTPStatus, code: p.ErrorCode, message: str) -> Response:
        self.metrics.refused.labels(code.value).inc()
        body = p.encode_server_message(p.ErrorMessage(code.value, message, fatal=True)).encode()
        return response(status, body, "application/json")

    def healthz(self) -> Response:
        model = self.server.model
        state = "stopping" if self.server.shutting_down else ("ok" if model is not None else "starting")
        body: dict = {"status": state, "streams": self.server.stream_count}
        if model is not None:
            body["model"] = {
                "name": model.contract.name,
                "version": model.contract.version,
                "provider": model.provider,
            }
        status = http.HTTPStatus.OK if self.server.healthy else http.HTTPStatus.SERVICE_UNAVAILABLE
        return response(status, json.dumps(body).encode(), "application/json")


def response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
    )
    return Response(status.value, status.phrase, headers, body)
