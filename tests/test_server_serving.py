"""vr-serve answers real frames correctly: a real ONNX model behind a real websocket server on
loopback, driven by the reference client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from tests.onnx_models import write_colour_model
from tests.server_helpers import http_get, metric_value, serving, solid_jpeg
from vr_recognition.server import protocol as p
from vr_recognition.server.client import RecognitionClient


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory) -> Path:
    return write_colour_model(tmp_path_factory.mktemp("models") / "colour.onnx")


@pytest.mark.parametrize("colour", ["red", "green", "blue"])
async def test_jpeg_frames_are_classified_and_echo_pose_and_gaze(colour_model, colour):
    async with serving(colour_model) as server:
        settings = p.StreamSettings(top_k=2, budget_ms=1000)
        async with await RecognitionClient.connect(server.url, settings=settings) as client:
            assert client.model.classes == ("red", "green", "blue")
            assert client.model.provider == "CPUExecutionProvider"
            pose = p.Pose(
                (0.5, 1.625, -2.0), (0.0, 0.7071067690849304, 0.0, 0.7071067690849304)
            )  # float32-exact
            frame_id = await client.send_frame(
                solid_jpeg(colour, 1280, 720), width=1280, height=720, pose=pose, gaze=(0.5, 0.5),
                capture_time_us=123_456,
            )  # fmt: skip
            result = await client.recv(timeout=10)
    assert isinstance(result, p.Result)
    assert result.status is p.Status.OK
    assert (result.frame_id, result.capture_time_us, result.pose, result.gaze) == (
        frame_id,
        123_456,
        pose,
        (0.5, 0.5),
    )
    assert result.top_k[0].label == colour
    assert len(result.top_k) == 2
    assert result.top_k[0].score > 0.99
    assert result.top_k[0].score >= result.top_k[1].score
    assert {"receive", "decode", "queue", "infer", "post", "total"} <= set(result.timings_ms)
    assert result.timings_ms["total"] >= result.timings_ms["infer"]
    assert result.model_version == "1"


async def test_raw_frames_bottom_up_rows_and_gaze_crop(colour_model):
    # top half red, bottom half blue, as RGBA
    image = np.zeros((64, 64, 4), np.uint8)
    image[:32, :, 0] = 255
    image[32:, :, 2] = 255
    image[..., 3] = 255
    crop = p.StreamSettings(gaze_crop_scale=0.4, budget_ms=1000)
    async with (
        serving(colour_model) as server,
        await RecognitionClient.connect(server.url, settings=crop) as client,
    ):

        async def label(**frame) -> str:
            await client.send_frame(
                image.tobytes(), width=64, height=64, image_format=p.ImageFormat.RGBA8, **frame
            )
            result = await client.recv(timeout=10)
            assert result.status is p.Status.OK, result
            return result.top_k[0].label

        assert await label(gaze=(0.5, 0.1)) == "red"  # looking at the top
        assert await label(gaze=(0.5, 0.9)) == "blue"  # looking at the bottom
        assert await label(gaze=(0.5, 0.1), rows_bottom_up=True) == "blue"  # rows arrive flipped
        rgb = np.ascontiguousarray(image[..., :3])
        await client.send_frame(
            rgb.tobytes(), width=64, height=64, image_format=p.ImageFormat.RGB8, gaze=(0.2, 0.95)
        )
        assert (await client.recv(timeout=10)).top_k[0].label == "blue"


async def test_smoothing_is_an_ema_of_the_raw_scores(colour_model):
    async with serving(colour_model) as server:
        raw_settings = p.StreamSettings(top_k=3, budget_ms=1000)
        smooth_settings = p.StreamSettings(top_k=3, budget_ms=1000, smoothing_ema_alpha=0.25)
        async with (
            await RecognitionClient.connect(server.url, settings=raw_settings) as raw,
            await RecognitionClient.connect(server.url, settings=smooth_settings) as smooth,
        ):
            assert smooth.session.smoothing_ema_alpha == 0.25
            scores = []
            for colour in ("red", "blue"):
                frame = solid_jpeg(colour)
                await raw.send_frame(frame, width=320, height=180)
                await smooth.send_frame(frame, width=320, height=180)
                a, b = await raw.recv(timeout=10), await smooth.recv(timeout=10)
                scores.append(({t.label: t.score for t in a.top_k}, {t.label: t.score for t in b.top_k}))
    (raw_red, smooth_first), (raw_blue, smooth_second) = scores
    assert smooth_first == pytest.approx(raw_red, abs=1e-5)  # the first frame starts the average
    for label in ("red", "green", "blue"):
        expected = 0.25 * raw_blue[label] + 0.75 * raw_red[label]
        assert smooth_second[label] == pytest.approx(expected, abs=1e-5)
    assert max(smooth_second, key=smooth_second.get) == "red"  # one blue frame does not flip it


async def test_configure_ping_and_top_k_clamping(colour_model):
    async with serving(colour_model, top_k=1) as server:
        async with await RecognitionClient.connect(server.url, settings=p.StreamSettings(top_k=50)) as client:
            assert client.session.top_k == 3  # clamped to the class count
            configured = await client.configure(p.StreamSettings(top_k=2, budget_ms=500))
            assert (configured.session.top_k, configured.session.budget_ms) == (2, 500)
            assert await client.ping() > 0
            await client.send_frame(solid_jpeg("green"), width=320, height=180)
            result = await client.recv(timeout=10)
            assert len(result.top_k) == 2
        async with await RecognitionClient.connect(server.url) as default_client:
            assert default_client.session.top_k == 1  # the server default


async def test_health_and_metrics(colour_model):
    async with serving(colour_model, load=False) as server:
        base = server.url.replace("ws://", "http://")
        status, body = await http_get(base + "/healthz")
        assert status == 503
        assert json.loads(body)["status"] == "starting"
        await server.load_model()
        status, body = await http_get(base + "/healthz")
        assert status == 200
        assert json.loads(body)["model"]["provider"] == "CPUExecutionProvider"
        settings = p.StreamSettings(budget_ms=1000)
        async with await RecognitionClient.connect(server.url, settings=settings) as client:
            for _ in range(3):
                await client.send_frame(solid_jpeg("red"), width=320, height=180)
                await client.recv(timeout=10)
            await client.send_raw(b"nonsense")
            await client.recv(timeout=10)
            _, metrics = await http_get(base + "/metrics")
            text = metrics.decode()
            assert "vr_active_streams 1.0" in text
        assert "vr_inference_request_success_total 3.0" in text
        assert 'vr_inference_request_failure_total{code="bad_magic"} 1.0' in text
        assert "vr_compute_infer_duration_seconds_count" in text
        assert 'vr_model_info{name="colour",provider="CPUExecutionProvider",version="1"} 1.0' in text
        for _ in range(250):  # the server notices the close within a few event-loop turns
            if metric_value(server, "vr_active_streams") == 0:
                break
            await asyncio.sleep(0.02)
        _, metrics = await http_get(base + "/metrics")
        assert "vr_active_streams 0.0" in metrics.decode()
