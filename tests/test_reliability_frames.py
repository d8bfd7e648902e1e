"""No frame costs more than a frame: the worst frames inside the limits, sent to a real vr-serve.

Each case is sent to a server process whose peak memory is reset before the frame (Linux
`clear_refs`), so `VmHWM - VmRSS` afterwards is the most memory that frame made the server hold at
once. The bound asserted is derived from the limits and the model input, not measured: the message
itself, plus two copies (BGR and RGB) of the largest image the server will decode, plus allocator
slack. The figures (time and peak memory against a 720p frame) go to docs/reliability.md:

    python -m pytest -s tests/test_reliability_frames.py
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.onnx_models import write_colour_model
from tests.server_helpers import ServerProcess
from vr_recognition.server import imaging
from vr_recognition.server import protocol as p
from vr_recognition.server.client import RecognitionClient

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for peak memory"),
]
INPUT = 224  # a ResNet-sized input, so decoding and resizing cost what they cost in production
REPEATS = 3
LIMITS = p.Limits()
SLACK = 8 * 2**20  # allocator and library buffers


def texture(width: int, height: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A gradient with noise: realistic JPEG sizes (flat colour would compress to nothing)."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.linspace(0, 127, height), np.linspace(0, 127, width))[:, :, None]
    noisy = ramp + rng.normal(0, 20, (height, width, channels))
    return noisy.clip(0, 255).astype(np.uint8)


def jpeg(width: int, height: int, progressive: bool = False) -> bytes:
    flags = [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
    return cv2.imencode(".jpg", texture(width, height), flags)[1].tobytes()


def cases() -> dict[str, tuple[p.Frame, float | None]]:
    """name -> (frame, gaze crop scale). Every frame is inside the default limits."""
    biggest_raw = int((LIMITS.max_message_bytes - p.HEADER_SIZE) ** 0.5 / 3**0.5)  # RGB8 square
    biggest_rgba = int((LIMITS.max_message_bytes - p.HEADER_SIZE) ** 0.5 / 2)
    side = int(LIMITS.max_pixels**0.5)  # 4096
    thin_w = min(LIMITS.max_width, int((LIMITS.max_pixels * LIMITS.max_aspect_ratio) ** 0.5))
    thin_h = int(thin_w / LIMITS.max_aspect_ratio)
    prog_w, prog_h = 1920, 1080  # the largest progressive JPEG allowed
    frames = {
        "720p JPEG (reference)": (p.ImageFormat.JPEG, 1280, 720, jpeg(1280, 720), None),
        f"largest JPEG {side}x{side}": (p.ImageFormat.JPEG, side, side, jpeg(side, side), None),
        f"thinnest large JPEG {thin_w}x{thin_h}": (
            p.ImageFormat.JPEG, thin_w, thin_h, jpeg(thin_w, thin_h), None,
        ),
        # shorter side just under twice the model's need: decoded at full size
        "JPEG 2044x511, no reduction": (p.ImageFormat.JPEG, 2044, 511, jpeg(2044, 511), None),
        "tiny thin JPEG 8x2 (upscaled)": (p.ImageFormat.JPEG, 8, 2, jpeg(8, 2), None),
        f"progressive JPEG {prog_w}x{prog_h}": (
            p.ImageFormat.JPEG, prog_w, prog_h, jpeg(prog_w, prog_h, progressive=True), None,
        ),
        f"gaze crop 0.05 of JPEG {side}x{side}": (p.ImageFormat.JPEG, side, side, jpeg(side, side), 0.05),
        f"largest RGB8 {biggest_raw}x{biggest_raw}": (
            p.ImageFormat.RGB8, biggest_raw, biggest_raw, texture(biggest_raw, biggest_raw).tobytes(), None,
        ),
        f"largest RGBA8 {biggest_rgba}x{biggest_rgba}": (
            p.ImageFormat.RGBA8, biggest_rgba, biggest_rgba,
            texture(biggest_rgba, biggest_rgba, 4).tobytes(), None,
        ),
    }  # fmt: skip
    return {
        name: (p.Frame(0, 0, fmt, w, h, data, gaze=(0.97, 0.03) if scale else None), scale)
        for name, (fmt, w, h, data, scale) in frames.items()
    }


def proc_status(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def reset_peak(pid: int) -> int:
    """Set the process's peak RSS to its current RSS (Linux clear_refs 5); return that RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return proc_status(pid)["VmRSS"]


def bound_bytes(frame: p.Frame) -> int:
    """What one frame may make the server hold, from the limits and the model input alone: the message;
    two RGB-sized copies of the image (libjpeg's BGR and the RGB conversion; for raw frames, the
    contiguous copy resizing makes of a strided view), a JPEG never being decoded to more than
    MAX_DECODED_PIXELS; the frame resized before the crop (its shorter side at most resize_shorter when
    enlarging, the decoded size when shrinking; elongation at most max_aspect_ratio); and slack."""
    image = (
        imaging.MAX_DECODED_PIXELS if frame.image_format is p.ImageFormat.JPEG else frame.width * frame.height
    )
    enlarged = int(LIMITS.max_aspect_ratio * INPUT * INPUT)
    return len(p.encode_frame(frame)) + 2 * 3 * image + 3 * max(enlarged, image) + SLACK


async def measure(url: str, pid: int, frame: p.Frame, scale: float | None) -> tuple[list[float], list[int]]:
    settings = p.StreamSettings(budget_ms=60_000, gaze_crop_scale=scale)
    times, peaks = [], []
    async with await RecognitionClient.connect(url, settings=settings) as client:
        for index in range(REPEATS):
            before = reset_peak(pid)
            await client.send_raw(p.encode_frame(dataclasses.replace(frame, frame_id=index)))
            result = await client.recv(timeout=60)
            assert isinstance(result, p.Result), result
            assert result.status is p.Status.OK, result
            peaks.append(proc_status(pid)["VmHWM"] - before)
            times.append(result.timings_ms["decode"])
    return times, peaks


def test_worst_frames_inside_the_limits_cost_a_bounded_multiple_of_a_720p_frame(tmp_path, capsys):
    model = write_colour_model(tmp_path / "model.onnx", size=INPUT)
    server = ServerProcess(["--model", str(model), "--max-batch", "1"], tmp_path / "server.log")
    rows = []
    try:
        pid = server.proc.pid
        for name, (frame, scale) in cases().items():
            times, peaks = asyncio.run(measure(server.url, pid, frame, scale))
            message = len(p.encode_frame(frame))
            rows.append((name, message, statistics.median(times), max(peaks)))
            assert max(peaks) <= bound_bytes(frame), (name, max(peaks), bound_bytes(frame))
    finally:
        server.stop()
    reference_time, reference_peak = rows[0][2], rows[0][3]
    with capsys.disabled():
        print("\n| frame | message | decode+resize ms (median) | × 720p | peak extra MB | bound MB |")
        print("|---|---:|---:|---:|---:|---:|")
        for (name, message, decode_ms, peak), (frame, _) in zip(rows, cases().values(), strict=True):
            print(
                f"| {name} | {message / 2**20:.2f} MB | {decode_ms:.1f} | {decode_ms / reference_time:.1f} "
                f"| {peak / 2**20:.1f} | {bound_bytes(frame) / 2**20:.0f} |"
            )
        print(f"(720p reference peak {reference_peak / 2**20:.1f} MB)")
    assert "Traceback" not in server.log()
