"""Who may open a stream: one rule, asked at the websocket upgrade and again when hello arrives.

Pure: it takes a snapshot of the server's state, never the server. The gatekeeper refuses at the
upgrade with HTTP 503; a stream whose hello arrives after the server filled up (or began stopping)
is refused with a fatal `error` and close code 4013 (docs/protocol.md 3.5).
"""

from __future__ import annotations

from dataclasses import dataclass

from vr_recognition.server.protocol import ErrorCode, ModelInfo


@dataclass(frozen=True)
class ServerState:
    shutting_down: bool
    model: ModelInfo | None  # None until the first model is loaded and warm
    streams: int  # streams open (after hello)


@dataclass(frozen=True)
class Refusal:
    code: ErrorCode
    message: str


def refusal(state: ServerState, max_streams: int) -> Refusal | None:
    """None when one more stream may open; else why not."""
    if state.shutting_down:
        return Refusal(ErrorCode.SHUTTING_DOWN, "server is stopping")
    if state.model is None:
        return Refusal(ErrorCode.MODEL_UNAVAILABLE, "model is loading")
    if state.streams >= max_streams:
        return Refusal(ErrorCode.TOO_MANY_STREAMS, f"the server's limit of {max_streams} streams is reached")
    return None
