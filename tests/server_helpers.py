"""Real servers for tests: in-process on a loopback port, or as a `vr-serve` subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from tests.slow_vr_serve import fixed_cost
from vr_recognition.bench.spawn import SpawnedServer
from vr_recognition.server import protocol as p
from vr_recognition.server.app import RecognitionServer, ServerConfig
from vr_recognition.server.client import RecognitionClient

SLOW_VR_SERVE = Path(__file__).with_name("slow_vr_serve.py")
COLOURS_BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}


def solid_jpeg(colour: str, width: int = 320, height: int = 180, quality: int = 90) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = COLOURS_BGR[colour]
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


async def classify(client, colour: str = "red"):
    """Send one solid-colour frame and return its result, skipping other messages (model changes)."""

    await client.send_frame(solid_jpeg(colour), width=320, height=180)
    while True:
        message = await client.recv(timeout=30)
        if isinstance(message, p.Result):
            return message


# What the reliability tests watch on the server's /metrics
WATCHED = ("process_resident_memory_bytes", "process_open_fds", "vr_event_loop_tasks", "vr_threads",
           "vr_active_streams")  # fmt: skip


def scrape(url: str) -> dict[str, float]:
    """The WATCHED samples from a running server's /metrics."""
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in WATCHED
    }


def _http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def http_get(url: str) -> tuple[int, bytes]:
    """Off the event loop: the server under test runs on it."""
    return await asyncio.to_thread(_http_get, url)


async def scrape_async(url: str) -> dict[str, float]:
    return await asyncio.to_thread(scrape, url)


def metric_value(server: RecognitionServer, name: str, **labels: str) -> float:
    """One sample of an in-process server's metrics, by its exposed name (counters end in `_total`),
    through the registry's public API; 0.0 for a sample not yet present (a label never counted)."""
    value = server.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def slow_down(monkeypatch, server: RecognitionServer, seconds: float) -> threading.Event:
    """Make the in-process server's model take `seconds` longer per batch: slower than its clients on
    any CPU (a heavy graph is only slow in arithmetic). The event is set whenever a batch starts."""
    started = threading.Event()
    monkeypatch.setattr(server.model, "run", fixed_cost(server.model.run, seconds, started))
    return started


@dataclass
class PhasedLatencies:
    """Round trips (ms) filed under the phase they ran in (alone, under attack, ...); a round trip
    that straddles a phase change is left out."""

    phase: str = "alone"
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def p99(self, phase: str) -> float:
        return float(np.percentile(self.samples[phase], 99))


async def healthy_stream(url: str, stop: asyncio.Event, record: PhasedLatencies) -> int:
    """A well-behaved 30 Hz stream that checks every answer and records its round trips.
    Returns the frames served."""

    async with await RecognitionClient.connect(url, settings=p.StreamSettings(budget_ms=60_000)) as client:
        frame = solid_jpeg("green", 320, 180)
        served = 0
        while not stop.is_set():
            phase = record.phase
            start = time.perf_counter()
            await client.send_frame(frame, width=320, height=180)
            result = await client.recv(timeout=30)
            assert isinstance(result, p.Result)
            assert (result.status, result.top_k[0].label) == (p.Status.OK, "green")
            if phase == record.phase:
                record.samples[phase].append((time.perf_counter() - start) * 1000)
            served += 1
            await asyncio.sleep(1 / 30)
    return served


@contextlib.asynccontextmanager
async def serving(model_path: Path, load: bool = True, **config) -> AsyncIterator[RecognitionServer]:
    server = RecognitionServer(ServerConfig(model_path=model_path, **{"port": 0, **config}))
    await server.start()
    server.url = f"ws://127.0.0.1:{server.port}"
    try:
        if load:
            await server.load_model()
        yield server
    finally:
        await server.shutdown()


def ServerProcess(args: list[str], log_path: Path, seconds_per_batch: float | None = None) -> SpawnedServer:
    """`vr-serve` in a subprocess (for signals and import checks), its log kept at `log_path`; with
    `seconds_per_batch`, its model takes that much longer per batch (tests/slow_vr_serve.py)."""
    if seconds_per_batch is None:
        return SpawnedServer.vr_serve(args, log_path=log_path)
    command = [sys.executable, str(SLOW_VR_SERVE), str(seconds_per_batch), "--port", "0", *args]
    return SpawnedServer(command, "vr-serve (slow)", log_path=log_path)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A one-day certificate for localhost and 127.0.0.1 made with openssl: (cert.pem, key.pem)."""
    from tests.debian import require_debian_package

    openssl = require_debian_package("openssl", "openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
