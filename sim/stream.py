"""Live headset streams: the frame producer is here; the network loop is a stub for the client to fill.

`live_frames()` yields JPEG-encoded frames of a LiveScene at the requested size and quality, with their
ground truth. `stream_to_server()` is the boundary where the websocket client (server.protocol framing,
pacing at `fps`, `streams` concurrent connections, token auth) will be implemented.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from sim.catalog import DEFAULT_CLASSES
from sim.headset import LiveFrame, LiveScene
from sim.postprocess import encode_jpeg


@dataclasses.dataclass(frozen=True)
class StreamSettings:
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

    @property
    def frames_per_stream(self) -> int:
        return max(1, round(self.fps * self.duration_s))


class NetworkClientUnavailable(RuntimeError):
    """Raised until the websocket client exists; the CLI turns it into exit code 2."""


def live_frames(
    settings: StreamSettings, stream_index: int, limit: int | None = None
) -> Iterator[tuple[bytes, LiveFrame]]:
    """JPEG bytes and ground truth for one stream; each stream walks its own seeded path."""
    count = settings.frames_per_stream if limit is None else min(limit, settings.frames_per_stream)
    with LiveScene(
        settings.width, settings.height, settings.classes, seed=settings.seed + stream_index, fps=settings.fps
    ) as scene:
        for _ in range(count):
            frame = scene.next_frame()
            yield encode_jpeg(frame.rgb, settings.quality), frame


def stream_to_server(settings: StreamSettings) -> None:
    """Send every stream's frames to settings.url at settings.fps and collect predictions.

    Not implemented yet: the network client is a separate piece of work (it owns the wire protocol).
    """
    raise NetworkClientUnavailable(
        f"streaming to {settings.url} needs the network client, which is not part of vr-sim yet"
    )
