"""Open-loop load: every stream sends on its own display clock, whatever the server does.

A headset does not wait for an answer before capturing the next frame; it sends at its display
rate. So frame i of a stream is scheduled at t0 + phase + i/fps and sent as soon as possible after
that, and its latency is measured from the *scheduled* time. A slow send (a busy event loop, a
full socket) therefore counts against the server instead of silently thinning the load, which is
the coordinated-omission mistake of closed-loop benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

import numpy as np

from vr_recognition.bench.errors import BenchError
from vr_recognition.bench.frames import EncodedFrame
from vr_recognition.server import protocol as p
from vr_recognition.server.client import RecognitionClient, ServerRefused


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
    """What happened to each frame of one stream, indexed by frame id (times on time.monotonic())."""

    scheduled: np.ndarray
    sent: np.ndarray  # NaN: never sent (the connection failed first)
    answered: np.ndarray  # NaN: no answer
    status: list[str | None]
    timings_ms: list[dict[str, float] | None]
    failure: str | None = None

    @classmethod
    def empty(cls, scheduled: np.ndarray) -> StreamRecord:
        n = len(scheduled)
        return cls(scheduled, np.full(n, np.nan), np.full(n, np.nan), [None] * n, [None] * n)


@dataclass
class LoadRun:
    config: LoadConfig
    streams: list[StreamRecord]
    measured_from: int  # frame ids below this were warm-up: sent, but left out of the statistics
    provider: str = ""
    model_name: str = ""
    server_name: str = ""
    notes: list[str] = field(default_factory=list)


def schedule(t0: float, fps: float, count: int, phase: float) -> np.ndarray:
    return t0 + phase + np.arange(count) / fps


async def _send_on_schedule(client: RecognitionClient, frames: list[EncodedFrame], record: StreamRecord,
                            first_frame: int) -> None:  # fmt: skip
    for frame_id, when in enumerate(record.scheduled):
        delay = when - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = frames[(first_frame + frame_id) % len(frames)]
        record.sent[frame_id] = time.monotonic()
        await client.send_frame(
            frame.jpeg,
            width=frame.width,
            height=frame.height,
            frame_id=frame_id,
            capture_time_us=int(when * 1e6),
        )


async def _receive(client: RecognitionClient, record: StreamRecord, stop_at: list[float]) -> None:
    """Record answers until every sent frame is answered or the drain deadline passes."""
    outstanding = len(record.scheduled)
    while outstanding:
        timeout = max(0.0, stop_at[0] - time.monotonic()) if stop_at else None
        try:
            message = await client.recv(timeout=timeout)
        except asyncio.TimeoutError:
            return
        now = time.monotonic()
        if isinstance(message, p.Result):
            frame_id, status, timings = message.frame_id, message.status.value, message.timings_ms
        elif isinstance(message, p.ErrorMessage) and message.frame_id is not None:
            frame_id, status, timings = message.frame_id, p.Status.ERROR.value, {}
        else:
            continue
        if 0 <= frame_id < len(record.scheduled) and record.status[frame_id] is None:
            record.answered[frame_id] = now
            record.status[frame_id] = status
            record.timings_ms[frame_id] = timings
            outstanding -= 1


async def _run_stream(client: RecognitionClient, frames: list[EncodedFrame], record: StreamRecord,
                      first_frame: int, drain_s: float) -> None:  # fmt: skip
    stop_at: list[float] = []  # set once sending ends: the receiver then waits drain_s at most
    receiver = asyncio.create_task(_receive(client, record, stop_at))
    try:
        await _send_on_schedule(client, frames, record, first_frame)
    except Exception as exc:  # the connection broke: keep what was measured, say why
        record.failure = f"sending stopped: {type(exc).__name__}: {exc}"
    stop_at.append(time.monotonic() + drain_s)
    try:
        await asyncio.wait_for(receiver, drain_s + 1.0)
    except asyncio.TimeoutError:
        pass
    except Exception as exc:
        record.failure = record.failure or f"receiving stopped: {type(exc).__name__}: {exc}"


async def run_load(config: LoadConfig, frames: list[EncodedFrame]) -> LoadRun:
    """Connect all streams, then send open-loop for warmup + duration and collect every answer."""
    rng = random.Random(config.seed)
    settings = p.StreamSettings(top_k=1, budget_ms=config.budget_ms, fps=config.fps)
    clients = []
    try:
        for _ in range(config.streams):
            try:
                client = await RecognitionClient.connect(
                    config.url, client_name="vr-bench", settings=settings, token=config.token
                )
            except (OSError, ServerRefused) as exc:
                raise BenchError(f"cannot connect to {config.url}: {type(exc).__name__}: {exc}") from None
            clients.append(client)
        hello = clients[0].server_hello
        # Start shortly after everyone is connected; each stream gets its own phase within a frame
        # interval, as independent headsets would.
        t0 = time.monotonic() + 0.2
        interval = 1.0 / config.fps
        records = [
            StreamRecord.empty(schedule(t0, config.fps, config.frames_per_stream, rng.uniform(0, interval)))
            for _ in clients
        ]
        await asyncio.gather(
            *(
                _run_stream(client, frames, record, rng.randrange(len(frames)), config.drain_s)
                for client, record in zip(clients, records, strict=True)
            )
        )
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
    run = LoadRun(
        config=config,
        streams=records,
        measured_from=config.warmup_frames,
        provider=hello.model.provider,
        model_name=hello.model.name,
        server_name=hello.server_name,
    )
    run.notes += [f"stream {i}: {r.failure}" for i, r in enumerate(records) if r.failure]
    return run
