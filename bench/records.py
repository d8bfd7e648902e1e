"""What one load run is and what happened to each of its frames: plain data (numpy only).

Shared by the websocket load generator (bench/openloop.py) and the peer driver that runs inside a
peer's own environment (bench/peers/drive.py), which is why nothing here imports a client library.
Times are on `time.monotonic()`, which is one clock for every process of the machine.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np

# A frame a one-in-flight client never sent: a newer frame took its place in the client's one slot
# while the previous request was still out. It counts as a miss, like the server's dropped_stale.
CLIENT_SKIPPED = "client_skipped"


@dataclass
class LoadConfig:
    url: str
    streams: int
    fps: float
    duration_s: float
    budget_ms: float
    warmup_s: float = 0.0  # sent but left out of the statistics
    drain_s: float = 2.0  # after the last send, how long to wait for outstanding answers
    token: str | None = None
    seed: int = 0

    @property
    def warmup_frames(self) -> int:
        return round(self.fps * self.warmup_s)

    @property
    def frames_per_stream(self) -> int:
        """Warm-up frames, then exactly round(fps * duration) measured frames per stream."""
        return self.warmup_frames + max(1, round(self.fps * self.duration_s))


@dataclass
class StreamRecord:
    """What happened to each frame of one stream, indexed by frame id (times on time.monotonic()).

    Frame id i carries the distinct frame (first_frame + i) % len(frames)."""

    scheduled: np.ndarray
    sent: np.ndarray  # NaN: never sent (the connection failed first, or the client skipped it)
    answered: np.ndarray  # NaN: no answer
    status: list[str | None]
    timings_ms: list[dict[str, float] | None]
    failure: str | None = None
    first_frame: int = 0
    labels: list[str | None] = field(default_factory=list)  # top-1 label of each ok answer
    reconnects: int = 0  # connections made again after one ended (server restart, drain, lost network)

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = [None] * len(self.scheduled)

    @classmethod
    def empty(cls, scheduled: np.ndarray, first_frame: int = 0) -> StreamRecord:
        n = len(scheduled)
        return cls(scheduled, np.full(n, np.nan), np.full(n, np.nan), [None] * n, [None] * n,
                   first_frame=first_frame)  # fmt: skip

    def to_json(self) -> dict:
        def floats(values: np.ndarray) -> list[float | None]:
            return [None if math.isnan(v) else float(v) for v in values]

        return {
            "scheduled": floats(self.scheduled),
            "sent": floats(self.sent),
            "answered": floats(self.answered),
            "status": self.status,
            "timings_ms": self.timings_ms,
            "failure": self.failure,
            "first_frame": self.first_frame,
            "labels": self.labels,
            "reconnects": self.reconnects,
        }

    @classmethod
    def from_json(cls, data: dict) -> StreamRecord:
        def array(values: list) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        return cls(
            array(data["scheduled"]),
            array(data["sent"]),
            array(data["answered"]),
            list(data["status"]),
            list(data["timings_ms"]),
            data.get("failure"),
            int(data.get("first_frame", 0)),
            list(data.get("labels") or []),
            int(data.get("reconnects", 0)),
        )


@dataclass
class LoadRun:
    config: LoadConfig
    streams: list[StreamRecord]
    measured_from: int  # frame ids below this were warm-up: sent, but left out of the statistics
    provider: str = ""
    model_name: str = ""
    server_name: str = ""
    notes: list[str] = field(default_factory=list)
    pacing: dict = field(default_factory=dict)  # how the generator kept its schedule (bench/pacing.py)


def schedule(t0: float, fps: float, count: int, phase: float) -> np.ndarray:
    return t0 + phase + np.arange(count) / fps


def stream_records(config: LoadConfig, streams: int, distinct_frames: int) -> list[StreamRecord]:
    """The schedules of `streams` open-loop streams starting shortly from now: each stream its own phase
    within a frame interval and its own first frame, as independent headsets would, drawn from
    config.seed so that vr-serve and every peer get exactly the same load."""
    rng = random.Random(config.seed)
    t0 = time.monotonic() + 0.2
    interval = 1.0 / config.fps
    records = []
    for _ in range(streams):
        phase = rng.uniform(0, interval)
        records.append(
            StreamRecord.empty(
                schedule(t0, config.fps, config.frames_per_stream, phase), rng.randrange(distinct_frames)
            )
        )
    return records


def config_to_json(config: LoadConfig) -> dict:
    return asdict(config)
