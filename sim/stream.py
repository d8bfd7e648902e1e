"""Simulated headsets streaming to vr-serve: a demo and a realistic load source.

Each stream walks its own seeded head path through a scene, renders it (live on one render thread,
or pre-rendered once up front when live rendering cannot keep up with the display rate), encodes
JPEG and sends on its own clock at `fps` over the wire protocol. Because the simulator knows each
frame's true label, it reports the live accuracy of the server's answers beside their latency.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from vr_recognition.server import protocol as p
from vr_recognition.server.client import RecognitionClient, ServerRefused, monotonic_us
from vr_recognition.server.imaging import encode_jpeg
from vr_recognition.sim.catalog import DEFAULT_CLASSES
from vr_recognition.sim.errors import SimError
from vr_recognition.sim.headset import LiveScene


@dataclasses.dataclass(frozen=True)
class SimRunSettings:
    """One `vr-sim stream` run: where to send, how many headsets, how fast and for how long.

    Not the protocol's StreamSettings (what a client asks the server for); run_stream derives those
    from fps and budget_ms.
    """

    url: str
    fps: float = 90.0
    duration_s: float = 10.0
    streams: int = 1
    width: int = 1280
    height: int = 720
    quality: int = 90
    token: str | None = None
    seed: int = 0
    classes: tuple[str, ...] = DEFAULT_CLASSES
    prerender_s: float = 0.0  # > 0: render this many seconds of each path up front and loop them
    budget_ms: float | None = None

    @property
    def frames_per_stream(self) -> int:
        return max(1, round(self.fps * self.duration_s))


@dataclasses.dataclass
class StreamReport:
    """What one simulated headset saw."""

    sent: int = 0
    skipped_ticks: int = 0  # display ticks with no new rendered frame (live rendering too slow)
    ok: int = 0
    correct: int = 0
    dropped_stale: int = 0
    late: int = 0
    errors: int = 0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)

    def summary(self) -> dict:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        return {
            "sent": self.sent,
            "skipped_ticks": self.skipped_ticks,
            "ok": self.ok,
            "dropped_stale": self.dropped_stale,
            "late": self.late,
            "errors": self.errors,
            "accuracy": self.correct / self.ok if self.ok else None,
            "latency_ms": {
                "p50": float(np.percentile(lat, 50)),
                "p99": float(np.percentile(lat, 99)),
                "max": float(np.max(lat)),
            },
        }


class FrameSource:
    """Frames for one stream: rendered on the shared render thread, or pre-rendered and looped."""

    def __init__(self, settings: SimRunSettings, index: int, render_thread: ThreadPoolExecutor) -> None:
        self._settings = settings
        self._index = index
        self._thread = render_thread
        self._scene: LiveScene | None = None
        self._loop_frames: list[tuple[bytes, str]] = []
        self._position = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        s = self._settings
        self._scene = await loop.run_in_executor(
            self._thread,
            lambda: LiveScene(s.width, s.height, s.classes, seed=s.seed + self._index, fps=s.fps),
        )
        if s.prerender_s > 0:
            count = max(1, round(s.prerender_s * s.fps))
            self._loop_frames = [await self._render() for _ in range(count)]

    async def _render(self) -> tuple[bytes, str]:
        def render() -> tuple[bytes, str]:
            frame = self._scene.next_frame()
            return encode_jpeg(frame.rgb, self._settings.quality), frame.label

        return await asyncio.get_running_loop().run_in_executor(self._thread, render)

    async def next(self) -> tuple[bytes, str]:
        if self._loop_frames:
            frame = self._loop_frames[self._position % len(self._loop_frames)]
            self._position += 1
            return frame
        return await self._render()

    async def close(self) -> None:
        if self._scene is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._scene.close)


async def run_stream(settings: SimRunSettings, index: int, render_thread: ThreadPoolExecutor) -> StreamReport:
    report = StreamReport()
    source = FrameSource(settings, index, render_thread)
    await source.open()
    truth: dict[int, tuple[str, int]] = {}
    stream_settings = p.StreamSettings(top_k=1, fps=settings.fps, budget_ms=settings.budget_ms)
    try:
        try:
            client = await RecognitionClient.connect(
                settings.url, token=settings.token, client_name="vr-sim", settings=stream_settings
            )
        except (OSError, ServerRefused) as error:
            raise SimError(f"cannot stream to {settings.url}: {error}") from None
        async with client:
            receiver = asyncio.create_task(_receive(client, truth, report))
            period = 1.0 / settings.fps
            start = time.perf_counter()
            pending = asyncio.create_task(source.next())  # always one frame rendering ahead
            for tick in range(settings.frames_per_stream):
                scheduled = start + tick * period
                await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                if not pending.done():
                    report.skipped_ticks += 1  # the renderer has not finished the next frame yet
                    continue
                jpeg, label = pending.result()
                pending = asyncio.create_task(source.next())
                capture = monotonic_us()
                frame_id = await client.send_frame(jpeg, width=settings.width, height=settings.height,
                                                   capture_time_us=capture)  # fmt: skip
                truth[frame_id] = (label, capture)
                report.sent += 1
            pending.cancel()
            await asyncio.sleep(1.0)  # let the last answers arrive
            receiver.cancel()
    finally:
        await source.close()
    return report


async def _receive(
    client: RecognitionClient, truth: dict[int, tuple[str, int]], report: StreamReport
) -> None:
    async for message in client.results():
        if not isinstance(message, p.Result):
            continue
        label, capture = truth.pop(message.frame_id, (None, message.capture_time_us))
        if message.status is p.Status.OK:
            report.ok += 1
            report.latencies_ms.append((monotonic_us() - capture) / 1000.0)
            report.correct += int(bool(message.top_k) and message.top_k[0].label == label)
        elif message.status is p.Status.DROPPED_STALE:
            report.dropped_stale += 1
        elif message.status is p.Status.LATE:
            report.late += 1
        else:
            report.errors += 1


async def stream_to_server(settings: SimRunSettings) -> list[StreamReport]:
    """Run every stream concurrently; rendering shares one thread (Panda3D owns one graphics context)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="render") as render_thread:
        return list(
            await asyncio.gather(*(run_stream(settings, i, render_thread) for i in range(settings.streams)))
        )
