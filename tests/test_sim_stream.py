"""vr-sim stream against a real server: frames rendered by Panda3D, sent on each stream's clock,
every sent frame accounted for in the report."""

from __future__ import annotations

from tests.onnx_models import write_colour_model
from tests.server_helpers import serving
from vr_recognition.sim.stream import SimRunSettings, stream_to_server


async def test_simulated_headsets_stream_and_every_frame_is_answered(tmp_path):
    model = write_colour_model(tmp_path / "colour.onnx")
    async with serving(model) as server:
        for prerender in (0.0, 0.5):
            settings = SimRunSettings(
                url=server.url, fps=20, duration_s=1.0, streams=2, width=160, height=120,
                prerender_s=prerender, budget_ms=5000,
            )  # fmt: skip
            reports = await stream_to_server(settings)
            assert len(reports) == 2
            for report in reports:
                summary = report.summary()
                assert report.sent + report.skipped_ticks == settings.frames_per_stream
                # Prerendered frames are always ready; live rendering keeps up or skips ticks, as fast as
                # this CPU renders, so it need only send something.
                assert report.sent >= (10 if prerender else 1)
                answered = report.ok + report.dropped_stale + report.late + report.errors
                assert answered == report.sent
                assert report.errors == 0
                assert len(report.latencies_ms) == report.ok
                assert (
                    0
                    < summary["latency_ms"]["p50"]
                    <= summary["latency_ms"]["p99"]
                    <= summary["latency_ms"]["max"]
                )
                # the colour model knows none of the scene's labels
                assert summary["accuracy"] == 0.0
