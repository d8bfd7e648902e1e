"""Faults while serving: the affected frames get errors, then the streams recover by themselves."""

from __future__ import annotations

import asyncio
import logging

import cv2

from tests.onnx_models import write_colour_model
from tests.server_helpers import classify, metric_value, serving
from vr_recognition.server import protocol as p
from vr_recognition.server.client import RecognitionClient

PATIENT = p.StreamSettings(budget_ms=30_000)


async def test_inference_and_decode_failures_fail_frames_not_streams(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.ERROR)
    model = write_colour_model(tmp_path / "colour.onnx")
    async with (
        serving(model) as server,
        await RecognitionClient.connect(server.url, settings=PATIENT) as client,
    ):
        assert (await classify(client)).status is p.Status.OK

        real_run, failures = server.model.run, {"left": 2}

        def flaky_run(batch):
            if failures["left"]:
                failures["left"] -= 1
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return real_run(batch)

        monkeypatch.setattr(server.model, "run", flaky_run)
        broken = [await classify(client) for _ in range(2)]
        assert [(r.status, r.error.code) for r in broken] == [(p.Status.ERROR, "internal_error")] * 2
        assert "CUDA" not in broken[0].error.message  # internals stay in the server log
        assert (await classify(client, "blue")).top_k[0].label == "blue"  # recovered by itself

        # The fault goes in at the library boundary, so it reaches whichever server module decodes.
        real_imdecode = cv2.imdecode
        calls = {"n": 0}

        def flaky_imdecode(*args):
            calls["n"] += 1
            if calls["n"] == 1:
                raise MemoryError("decoder ran out of memory")
            return real_imdecode(*args)

        monkeypatch.setattr(cv2, "imdecode", flaky_imdecode)
        failed = await classify(client)
        assert (failed.status, failed.error.code) == (p.Status.ERROR, "internal_error")
        assert (await classify(client, "green")).top_k[0].label == "green"
    assert metric_value(server, "vr_inference_request_failure_total", code="internal_error") == 3
    assert any("failed" in r.getMessage() for r in caplog.records)  # logged server-side, with traceback


async def test_watched_model_deleted_or_corrupted_keeps_the_old_model(tmp_path):
    path = write_colour_model(tmp_path / "model.onnx", version="v1")
    async with (
        serving(path, watch_model=True, watch_interval_s=0.05) as server,
        await RecognitionClient.connect(server.url, settings=PATIENT) as client,
    ):
        path.unlink()  # deleted
        await asyncio.sleep(0.3)
        assert (await classify(client)).model_version == "v1"
        path.write_bytes(b"\x00" * 1000)  # corrupted
        for _ in range(100):
            if metric_value(server, "vr_model_reloads_total", result="rejected"):
                break
            await asyncio.sleep(0.05)
        assert metric_value(server, "vr_model_reloads_total", result="rejected") >= 1
        result = await classify(client, "blue")
        assert (result.status, result.model_version, result.top_k[0].label) == (p.Status.OK, "v1", "blue")
        write_colour_model(tmp_path / "next.onnx", version="v2").replace(path)  # fixed: picked up
        changed = await client.recv(timeout=10)
        assert isinstance(changed, p.ModelChanged)
        assert (await classify(client)).model_version == "v2"
