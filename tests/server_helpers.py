"""Real servers for tests: in-process on a loopback port, or as a `vr-serve` subprocess."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np

from bench.spawn import SpawnedServer
from server.app import RecognitionServer, ServerConfig

COLOURS_BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}


def solid_jpeg(colour: str, width: int = 320, height: int = 180, quality: int = 90) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = COLOURS_BGR[colour]
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


async def classify(client, colour: str = "red"):
    """Send one solid-colour frame and return its result, skipping other messages (model changes)."""
    from server import protocol as p

    await client.send_frame(solid_jpeg(colour), width=320, height=180)
    while True:
        message = await client.recv(timeout=30)
        if isinstance(message, p.Result):
            return message


@contextlib.asynccontextmanager
async def serving(model_path: Path, load: bool = True, **config) -> AsyncIterator[RecognitionServer]:
    server = RecognitionServer(ServerConfig(model_path=model_path, port=0, **config))
    await server.start()
    server.url = f"ws://127.0.0.1:{server.port}"
    try:
        if load:
            await server.load_model()
        yield server
    finally:
        await server.shutdown()


def ServerProcess(args: list[str], log_path: Path) -> SpawnedServer:
    """`vr-serve` in a subprocess (for signals and import checks), its log kept at `log_path`."""
    return SpawnedServer.vr_serve(args, log_path=log_path)
