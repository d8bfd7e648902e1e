"""A client that stops reading its results cannot grow the server's memory or stall others: its
own stream blocks, and after the send timeout it is disconnected with 1008 slow_consumer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import cv2
import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from tests.onnx_models import write_colour_model
from tests.server_helpers import (
    PhasedLatencies,
    ServerProcess,
    healthy_stream,
    metric_value,
    scrape_async,
    serving,
    solid_jpeg,
)
from vr_recognition.server import protocol as p
from vr_recognition.server.app import CLOSE_TIMEOUT_S
from vr_recognition.server.client import RecognitionClient


async def test_stalled_reader_is_disconnected_and_others_carry_on(tmp_path):
    # 300 classes and top_k 300 make every reply ~30 KB, so unread replies fill the socket buffers fast
    model = write_colour_model(tmp_path / "colour.onnx", extra_classes=300)
    tiny = p.encode_frame(p.Frame(0, 0, p.ImageFormat.RGB8, 1, 1, b"\xff\x00\x00"))
    async with serving(model, send_timeout_s=0.5) as server:
        bystander = await RecognitionClient.connect(server.url, settings=p.StreamSettings(budget_ms=10_000))
        # max_queue=1: the client library stops reading the socket after one unread message
        async with connect(server.url, compression=None, max_queue=1) as stalled:
            await stalled.send(p.encode_client_message(p.ClientHello(settings=p.StreamSettings(top_k=300))))
            sent = 0
            try:
                for _ in range(100_000):  # never reads a reply
                    await asyncio.wait_for(stalled.send(tiny), 2)
                    sent += 1
                    if sent % 100 == 0 and stalled.state.name != "OPEN":
                        break
            except Exception:
                pass
            for _ in range(100):  # until the server has let the stalled stream go (its close may come first)
                if metric_value(server, "vr_active_streams") == 1:
                    break
                await asyncio.sleep(0.05)
        assert metric_value(server, "vr_inference_request_failure_total", code="slow_consumer") == 1
        assert metric_value(server, "vr_active_streams") == 1  # only the bystander is left
        await bystander.send_frame(solid_jpeg("green"), width=320, height=180)
        result = await bystander.recv(timeout=10)
        assert result.status is p.Status.OK
        await bystander.close()
    assert sent > 100  # it really did flood the server before being dropped


# VR_RELIABILITY=long runs the slow-reader scenario with the server's default timeouts and longer
# phases, for the figures in docs/reliability.md.
LONG = os.environ.get("VR_RELIABILITY") == "long"
KEEPALIVE_S = 10.0 if LONG else 3.0
SEND_TIMEOUT_S = 5.0 if LONG else 2.0
QUIET_S, PROMPT_S = (30.0, 30.0) if LONG else (4.0, 8.0)


def noisy_jpeg(width: int, height: int) -> bytes:
    """Noise compresses badly: a ~200 KB frame, so buffering frames would show in the server's RSS."""
    image = np.random.default_rng(7).integers(0, 256, (height, width, 3), np.uint8)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buffer.tobytes()


async def neighbour(
    url: str, frame: bytes, read_every_s: float | None, for_s: float = 60.0
) -> tuple[float, int, int]:
    """Send frames at 30 Hz for up to `for_s` seconds, with no keepalive of its own, and read replies:
    all of them (read_every_s=0), one every `read_every_s` seconds, or none (None). Stops early when
    the server cuts it off. Returns (seconds connected, frames sent, replies read)."""
    sent = read = 0
    async with connect(url, compression=None, max_queue=1, ping_interval=None, max_size=None) as ws:
        await ws.send(p.encode_client_message(p.ClientHello(settings=p.StreamSettings(top_k=300))))
        start = time.perf_counter()

        async def reply_reader() -> None:
            nonlocal read
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await ws.recv()
                    read += 1
                    await asyncio.sleep(read_every_s)

        reader = asyncio.create_task(reply_reader()) if read_every_s is not None else None
        while ws.state is State.OPEN and time.perf_counter() - start < for_s:
            try:  # once the server stops reading this stream, TCP makes the send wait
                await asyncio.wait_for(ws.send(frame), 1.0)
                sent += 1
            except (TimeoutError, ConnectionClosed):
                continue
            await asyncio.sleep(1 / 30)
        connected = time.perf_counter() - start
        for _ in range(100):  # a prompt reader takes the last replies before it leaves
            if read_every_s != 0 or read > sent or ws.state is not State.OPEN:
                break
            await asyncio.sleep(0.05)
        if reader is not None:
            reader.cancel()
    return connected, sent, read


def test_stalled_and_1_hz_readers_stay_bounded_are_cut_off_and_spare_the_others(tmp_path):
    """A client that never reads and one that reads one reply a second, both sending 30 Hz of
    ~200 KB frames: the server's memory stays within the bound docs/security.md states, both are
    disconnected within the documented time, and a healthy stream is served correctly throughout.
    The healthy stream's latency is recorded alone, beside two neighbours sending the same frames
    but reading promptly, and beside the two slow readers (docs/reliability.md)."""
    # 300 classes and top_k 300 make every reply ~30 KB, so unread replies fill the socket buffers
    model = write_colour_model(tmp_path / "colour.onnx", extra_classes=300)
    args = ["--model", str(model), "--send-timeout", str(SEND_TIMEOUT_S), "--keepalive", str(KEEPALIVE_S)]
    server = ServerProcess(args, tmp_path / "serve.log")
    frame = p.encode_frame(p.Frame(0, 0, p.ImageFormat.JPEG, 640, 360, noisy_jpeg(640, 360)))
    try:

        async def scenario():
            stop, latencies = asyncio.Event(), PhasedLatencies()
            memory: list[tuple[str, float]] = []  # (phase, server RSS), sampled alike in every phase

            async def watch_memory() -> None:
                while True:
                    sample = await scrape_async(server.url)
                    memory.append((latencies.phase, sample["process_resident_memory_bytes"]))
                    await asyncio.sleep(0.5)

            healthy = asyncio.create_task(healthy_stream(server.url, stop, latencies))
            watcher = asyncio.create_task(watch_memory())
            await asyncio.sleep(QUIET_S)
            latencies.phase = "prompt neighbours"
            prompt = await asyncio.gather(*(neighbour(server.url, frame, 0, PROMPT_S) for _ in range(2)))
            latencies.phase = "alone"
            await asyncio.sleep(2.0)
            before = memory[-1][1]
            latencies.phase = "slow readers"
            outcomes = await asyncio.gather(
                neighbour(server.url, frame, None), neighbour(server.url, frame, 1.0)
            )
            latencies.phase = "alone"
            await asyncio.sleep(2.0)
            watcher.cancel()
            after = await scrape_async(server.url)
            stop.set()
            served = await healthy
            peak = max(rss for phase, rss in memory if phase == "slow readers")
            return before, peak, after, prompt, outcomes, latencies, served

        before, peak, after, prompt, outcomes, latencies, served = asyncio.run(scenario())
    finally:
        server.stop()
    log = server.log()
    (stalled_s, stalled_sent, _), (slow_s, slow_sent, slow_read) = outcomes
    growth_mb = (peak - before) / 2**20
    phases = ("alone", "prompt neighbours", "slow readers")
    print(
        f"\n[slow readers] stalled: cut off after {stalled_s:.1f} s ({stalled_sent} frames sent); "
        f"1 Hz reader: after {slow_s:.1f} s ({slow_sent} sent, {slow_read} replies read); server RSS "
        f"{before / 2**20:.1f} MB, peak +{growth_mb:.1f} MB; healthy stream "
        "p99 "
        + ", ".join(f"{ph} {latencies.p99(ph):.1f} ms ({len(latencies.samples[ph])} frames)" for ph in phases)
    )
    for _, sent, read in prompt:  # the prompt neighbours were served in full and never cut off
        assert sent > 100
        assert read == sent + 1  # the server's hello, then one reply per frame
    # Cut off within the documented time: a pong is at most one keepalive late after one keepalive
    # interval, or a reply waits send_timeout; then the closing handshake gets close_timeout.
    limit = 2 * KEEPALIVE_S + SEND_TIMEOUT_S + CLOSE_TIMEOUT_S + 2.0
    assert stalled_s < limit, stalled_s
    assert slow_s < limit, slow_s
    assert min(stalled_sent, slow_sent) > 30  # they really flooded the server
    assert slow_read >= 1  # and the 1 Hz one really read
    # The documented bound: per stream, at most 4 messages held (docs/security.md), plus allocator slack.
    assert growth_mb < 2 * 4 * len(frame) / 2**20 + 16, growth_mb
    assert after["vr_active_streams"] == 1  # only the healthy stream is left
    assert served > 100
    assert len(latencies.samples["slow readers"]) > 50
    assert "Traceback" not in log
