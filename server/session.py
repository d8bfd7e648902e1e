"""One stream's rules as pure code: messages in, what to send (and what to queue) out.

Like python-websockets' protocol objects, a `Session` does no I/O: no awaits, no asyncio, no
sockets. The asyncio adapter (server/app.py) feeds it every message of one connection and carries
out the `Events` it returns: send these messages, queue this frame, pause reading this long, close
with this code. Everything a stream may and may not do is here, so it is tested without a socket
(tests/test_session.py):

- hello first: frames and other messages before it get `hello_required`; a hello whose version
  range we cannot meet gets a fatal `unsupported_version` and close 1002; no hello in time, close 1008;
- once open: a second hello is `duplicate_hello`; `configure` merges settings and answers `configured`;
  `ping` answers `pong`; a frame that parses is queued, one that does not gets its error;
- rejected messages are throttled (a token bucket, so a garbage flood costs little);
- while the server stops, new frames are answered `shutting_down`;
- result building: a frame replaced by a newer one is answered `dropped_stale`, a processed one
  with its predictions, timings, pose and gaze echoed.

Times are `clock()` seconds (time.perf_counter by default; tests pass their own clock).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from vr_recognition.server import protocol as p
from vr_recognition.server.admission import Refusal

# A rejected message costs the server ~0.5 ms of its one event-loop core (framing, parse, error reply).
# 50/s keeps a garbage flood at ~3 % of that core, so healthy streams barely notice it
# (docs/reliability.md); a client that means well never comes close.
REJECT_RATE_PER_S = 50.0
REJECT_BURST = 100.0


@dataclass
class PendingFrame:
    """A parsed frame waiting in its stream's mailbox. Times are clock() seconds."""

    frame: p.Frame
    arrived: float  # the message was in the server's hands
    parsed: float  # header decoded and validated
    deadline: float  # arrived + budget


@dataclass(frozen=True)
class Close:
    """Close the connection with this websocket close code; the reason is an error code."""

    code: int
    reason: str


@dataclass
class Events:
    """What the adapter must do after one input, in this order: send, queue, close, pause."""

    send: list[p.ServerMessage] = field(default_factory=list)
    frame: PendingFrame | None = None  # for the stream's one-slot mailbox
    hello: p.ClientHello | None = None  # a valid hello arrived: check admission, then call open()
    close: Close | None = None
    pause_s: float = 0.0  # read nothing more from this client for this long


@dataclass(frozen=True)
class Processed:
    """What the pipeline made of one frame (server/pipeline.py)."""

    status: p.Status  # OK, LATE or ERROR
    timings_s: dict[str, float]
    predictions: tuple[p.Prediction, ...] = ()
    error: p.ErrorInfo | None = None
    model_version: str = ""


class ErrorThrottle:
    """Token bucket for rejected messages: a burst is free, a sustained flood is slowed to `rate`/s."""

    def __init__(
        self,
        rate: float = REJECT_RATE_PER_S,
        burst: float = REJECT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._last = burst, clock()

    def delay(self) -> float:
        """Take a token; return how long the caller should pause before reading more."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class State(enum.Enum):
    AWAITING_HELLO = "awaiting_hello"
    OPEN = "open"
    CLOSED = "closed"


class Session:
    def __init__(
        self,
        *,
        defaults: p.StreamSettings,
        limits: p.Limits,
        server_version: str,
        clock: Callable[[], float] = time.perf_counter,
        throttle: ErrorThrottle | None = None,
    ) -> None:
        self.defaults = defaults  # the server's defaults, for what the client does not ask
        self.limits = limits
        self.server_version = server_version
        self.clock = clock
        self.throttle = throttle or ErrorThrottle(clock=clock)
        self.state = State.AWAITING_HELLO
        self.accepting = True  # False once the server is stopping
        self.client = "?"
        self.asked = p.StreamSettings()  # what the client asked for, merged over time by configure
        self.model: p.ModelInfo | None = None  # the model answering this stream, as last announced
        self._hello: p.ClientHello | None = None
        self._ema: np.ndarray | None = None
        self._ema_model: object | None = None

    # --- input ---------------------------------------------------------------------------------

    def receive(self, message: str | bytes) -> Events:
        """One websocket message (text or binary) from the client."""
        if self.state is State.CLOSED:
            return Events()
        if isinstance(message, str):
            return self._receive_text(message)
        return self._receive_frame(message)

    def hello_timed_out(self) -> Events:
        return self._fatal(p.ErrorCode.HELLO_REQUIRED, "no hello in time", p.CloseCode.POLICY_VIOLATION)

    def open(self, model: p.ModelInfo | None, refused: Refusal | None) -> Events:
        """After `Events.hello`: answer the hello, or refuse the stream (admission said no)."""
        assert self._hello is not None, "open() answers a hello"
        if refused is not None or model is None:
            refused = refused or Refusal(p.ErrorCode.MODEL_UNAVAILABLE, "model is loading")
            return self._fatal(refused.code, refused.message, p.CloseCode.TRY_AGAIN_LATER)
        hello = self._hello
        self.state = State.OPEN
        self.model = model
        self.client = f"{hello.client_name}/{hello.client_version}"
        self.asked = replace(hello.settings, reset=frozenset())  # in hello, null is the default anyway
        server_hello = p.ServerHello(
            protocol=p.negotiate_version(hello),
            server_name="vr-serve",
            server_version=self.server_version,
            model=model,
            session=self.settings(),
            limits=self.limits,
        )
        return Events(send=[server_hello])

    def model_changed(self, model: p.ModelInfo) -> Events:
        """A new model answers from now on; the client is told."""
        self.model = model
        return Events(send=[p.ModelChanged(model)])

    def stop_accepting(self) -> None:
        """The server is stopping: frames from now on are answered `shutting_down`."""
        self.accepting = False

    def going_away(self) -> Events:
        """The server stops: its frames are answered; now say why, then close with 1001."""
        return self._fatal(p.ErrorCode.SHUTTING_DOWN, "server is stopping", p.CloseCode.GOING_AWAY)

    # --- output --------------------------------------------------------------------------------

    def settings(self, class_count: int | None = None) -> p.EffectiveSettings:
        """The settings in force: what the client asked, else the server's default, clamped."""
        if class_count is None:
            class_count = len(self.model.classes) if self.model is not None else self.limits.max_top_k
        return p.EffectiveSettings(
            top_k=max(1, min(self._pick("top_k"), class_count, self.limits.max_top_k)),
            budget_ms=self._pick("budget_ms"),
            fps=self._pick("fps"),
            smoothing_ema_alpha=self._pick("smoothing_ema_alpha"),
            gaze_crop_scale=self._pick("gaze_crop_scale"),
        )

    @property
    def budget_s(self) -> float:
        return self._pick("budget_ms") / 1000.0

    def smooth(self, probabilities: np.ndarray, alpha: float | None, model: object) -> np.ndarray:
        """Exponential moving average of scores over this stream's answered frames (if asked for).
        Restarts when the model changes, since class indices may mean something else."""
        if alpha is None:
            self._ema = None
            return probabilities
        if self._ema is None or self._ema_model is not model or self._ema.shape != probabilities.shape:
            self._ema = probabilities.copy()
        else:
            self._ema = alpha * probabilities + (1.0 - alpha) * self._ema
        self._ema_model = model
        return self._ema

    def stale(self, pending: PendingFrame) -> p.Result:
        """The answer to a frame that a newer one replaced before it was processed."""
        timings = {"receive": pending.parsed - pending.arrived, "total": self.clock() - pending.arrived}
        return self._result(pending, p.Status.DROPPED_STALE, timings)

    def result(self, pending: PendingFrame, processed: Processed) -> p.Result:
        """The answer to a processed frame."""
        return self._result(
            pending,
            processed.status,
            processed.timings_s,
            processed.predictions,
            processed.error,
            processed.model_version,
        )

    # --- rules ---------------------------------------------------------------------------------

    def _receive_text(self, text: str) -> Events:
        try:
            message = p.decode_client_message(text, self.limits.max_control_bytes)
            if self.state is State.AWAITING_HELLO:
                if not isinstance(message, p.ClientHello):
                    raise p.ProtocolError(p.ErrorCode.HELLO_REQUIRED, "the first message must be hello")
                p.negotiate_version(message)
                self._hello = message
                return Events(hello=message)
            if isinstance(message, p.Ping):
                now_us = int(self.clock() * 1_000_000)
                return Events(send=[p.Pong(message.id, message.client_time_us, now_us)])
            if isinstance(message, p.Configure):
                self.asked = _merge(self.asked, message.settings)
                return Events(send=[p.Configured(self.settings())])
            raise p.ProtocolError(p.ErrorCode.DUPLICATE_HELLO, "this stream already said hello")
        except p.ProtocolError as exc:
            if exc.code is p.ErrorCode.UNSUPPORTED_VERSION and self.state is State.AWAITING_HELLO:
                return self._fatal(exc.code, exc.message, p.CloseCode.PROTOCOL_ERROR)
            return self._rejected(p.ErrorMessage(exc.code.value, exc.message))

    def _receive_frame(self, data: bytes) -> Events:
        arrived = self.clock()
        if self.state is State.AWAITING_HELLO:
            return self._rejected(
                p.ErrorMessage(p.ErrorCode.HELLO_REQUIRED.value, "send hello before frames")
            )
        try:
            frame = p.decode_frame(data)
        except p.ProtocolError as exc:
            return self._rejected(p.error_for(exc))
        if not self.accepting:
            error = p.ProtocolError(p.ErrorCode.SHUTTING_DOWN, "server is stopping", frame_id=frame.frame_id,
                                    capture_time_us=frame.capture_time_us)  # fmt: skip
            return self._rejected(p.error_for(error))
        parsed = self.clock()
        return Events(frame=PendingFrame(frame, arrived, parsed, arrived + self.budget_s))

    def _rejected(self, reply: p.ServerMessage) -> Events:
        # Fairness: a client sending garbage is slowed to REJECT_RATE_PER_S, so its cost stays bounded.
        return Events(send=[reply], pause_s=self.throttle.delay())

    def _fatal(self, code: p.ErrorCode, message: str, close: int) -> Events:
        self.state = State.CLOSED
        return Events(send=[p.ErrorMessage(code.value, message, fatal=True)], close=Close(close, code.value))

    def _pick(self, name: str):
        value = getattr(self.asked, name)
        return value if value is not None else getattr(self.defaults, name)

    def _result(
        self,
        pending: PendingFrame,
        status: p.Status,
        timings_s: dict[str, float],
        top_k: tuple[p.Prediction, ...] = (),
        error: p.ErrorInfo | None = None,
        model_version: str | None = None,
    ) -> p.Result:
        frame = pending.frame
        if model_version is None:
            model_version = self.model.version if self.model is not None else ""
        return p.Result(
            frame_id=frame.frame_id,
            capture_time_us=frame.capture_time_us,
            status=status,
            top_k=top_k,
            timings_ms={k: v * 1000.0 for k, v in timings_s.items()},
            pose=frame.pose,
            gaze=frame.gaze,
            model_version=model_version,
            error=error,
        )


def _merge(current: p.StreamSettings, update: p.StreamSettings) -> p.StreamSettings:
    """Fields present in `update` replace the current ones, fields sent as null go back to the
    server's default, absent fields stay."""
    changes = {name: None for key, name in p.SETTING_FIELDS.items() if key in update.reset}
    changes.update(
        {
            name: getattr(update, name)
            for name in p.SETTING_FIELDS.values()
            if getattr(update, name) is not None
        }
    )
    return replace(current, **changes, reset=frozenset())
