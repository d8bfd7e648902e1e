"""Real servers for tests: in-process on a loopback port, or as a `vr-serve` subprocess."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np

from server.app import RecognitionServer, ServerConfig

COLOURS_BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}


def solid_jpeg(colour: str, width: int = 320, height: int = 180, quality: int = 90) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = COLOURS_BGR[colour]
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


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


class ServerProcess:
    """`vr-serve` in a subprocess, for signals (SIGHUP, SIGTERM) and import checks."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "--port", "0", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = self.wait_for(r"listening on (wss?://[\d.]+:\d+)").group(1)
        self.wait_for(r"ready: ")

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(f"vr-serve exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in vr-serve's log within {timeout} s:\n{self.log()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=15)
        finally:
            self._log.close()
