"""Per-stream state: the client's settings, its mailbox and its score smoothing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace

import numpy as np
from vr_recognition.server.mailbox import LatestSlot
from vr_recognition.server.protocol import EffectiveSettings, Frame, Limits, StreamSettings


@dataclass
class PendingFrame:
    """A parsed frame waiting in its stream's mailbox. Times are time.perf_counter() seconds."""

    frame: Frame
    arrived: float  # the message was in the server's hands
    parsed: float  # header decoded and validated
    deadline: float  # arrived + budget


# A rejected message costs the server ~0.5 ms of its one event-loop core (framing, parse, error reply).
# 50/s keeps a garbage flood at ~3 % of that core, so healthy streams barely notice it
# (docs/reliability.md); a client that means well never comes close.
REJECT_RATE_PER_S = 50.0
REJECT_BURST = 100.0


class ErrorThrottle:
    """Token bucket for rejected messages: a burst is free, a sustained flood is slowed to `rate`/s."""

    def __init__(self, rate: float = REJECT_RATE_PER_S, burst: float = REJECT_BURST) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._last = burst, time.monotonic()

    def delay(self) -> float:
        """Take a token; return how long the caller should pause before reading more."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@dataclass
class StreamState:
    client: str
    asked: StreamSettings  # what the client asked for, merged over time by configure
    defaults: StreamSettings  # the server's defaults
    slot: LatestSlot[PendingFrame] = field(default_factory=LatestSlot)
    busy: bool = False  # the stream's worker is decoding/inferring a frame
    accepting: bool = True  # False once the server is shutting down
    worker: asyncio.Task | None = None
    error_throttle: ErrorThrottle = field(default_factory=ErrorThrottle)
    _ema: np.ndarray | None = None
    _ema_model: object | None = None

    def configure(self, update: StreamSettings) -> None:
        """Fields present in `update` replace the current ones; absent fields stay."""
        changes = {
            k: getattr(update, k) for k in update.__dataclass_fields__ if getattr(update, k) is not None
        }
        self.asked = replace(self.asked, **changes)

    def _pick(self, name: str):
        """What the client asked for, else the server's default."""
        value = getattr(self.asked, name)
        return value if value is not None else getattr(self.defaults, name)

    def effective(self, class_count: int, limits: Limits) -> EffectiveSettings:
        pick = self._pick
        return EffectiveSettings(
            top_k=max(1, min(pick("top_k"), class_count, limits.max_top_k)),
            budget_ms=pick("budget_ms"),
            fps=pick("fps"),
            smoothing_ema_alpha=pick("smoothing_ema_alpha"),
            gaze_crop_scale=pick("gaze_crop_scale"),
        )

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

    @property
    def budget_s(self) -> float:
        return self._pick("budget_ms") / 1000.0

    @property
    def idle(self) -> bool:
        return not self.busy and not self.slot.pending
