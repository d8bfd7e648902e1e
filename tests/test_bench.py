"""vr-bench against real vr-serve processes on loopback, with real ONNX models and real JPEG frames.

The numbers themselves depend on the machine; what is checked is that they are honest: counts add
up, percentiles are ordered, ratios come from the same run, and the load is open-loop (a slow
server does not slow the sender down, and its queueing shows in the latency). The slow server is
slow in time, not in arithmetic (a heavy model is fast on a fast CPU): the protocol peer answering
one frame at a time after a fixed sleep.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import time

import cv2
import numpy as np
import pytest

from tests.onnx_models import write_colour_model
from tests.protocol_peer import running_peer
from vr_recognition.bench import cli
from vr_recognition.bench.frames import frames_from_folder
from vr_recognition.bench.openloop import LoadConfig, LoadRun, StreamRecord, run_load
from vr_recognition.bench.pacing import Pacer
from vr_recognition.bench.records import CLIENT_SKIPPED
from vr_recognition.bench.stats import answer_age_ms, summarize, top1_agreement, top1_by_frame

pytestmark = pytest.mark.slow

HAS_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision", "PIL"))
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    """A few synthetic photos-ish images (noise over a colour) in nested folders, jpg and png."""
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for index in range(6):
        image = np.zeros((240, 400, 3), np.uint8)
        image[:] = ((0, 0, 255), (0, 255, 0), (255, 0, 0))[index % 3]
        image = cv2.add(image, rng.integers(0, 60, image.shape, dtype=np.uint8))
        sub = folder / f"session{index % 2}"
        sub.mkdir(exist_ok=True)
        cv2.imwrite(str(sub / f"{index:03d}.{'png' if index == 5 else 'jpg'}"), image)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_colour_model(tmp_path_factory.mktemp("models") / "colour.onnx")


def check_report(report: dict, streams: int, fps: float, duration: float) -> None:
    """The invariants every vr-bench report must satisfy, whatever the machine."""
    frames = report["frames"]
    assert frames["scheduled"] == streams * round(fps * duration)
    assert frames["sent"] == frames["scheduled"]  # loopback, healthy server: every frame goes out
    assert frames["sent"] == (
        frames["answered"]
        + frames["dropped_stale"]
        + frames["late"]
        + frames["errors"]
        + frames["unanswered"]
    )
    assert frames["answered"] > 0
    e2e = report["e2e_ms"]
    assert 0 < e2e["p50"] <= e2e["p90"] <= e2e["p95"] <= e2e["p99"] <= e2e["max"]
    assert report["age_ms"]["p50"] <= report["age_ms"]["p99"]
    # the newest answer can be no younger than one frame interval at a display tick
    assert report["age_ms"]["p50"] >= 1000.0 / fps - 0.01

    fps_report = report["answered_fps"]
    assert fps_report["total"] == pytest.approx(frames["answered"] / duration, abs=1e-3)
    assert len(fps_report["per_stream"]) == streams
    assert sum(fps_report["per_stream"]) == pytest.approx(fps_report["total"], abs=0.01 * streams)
    assert sum(report["stream_share"]) == pytest.approx(1.0, abs=1e-5)

    miss = report["deadline_miss_rate"]
    not_ok = frames["sent"] - frames["answered"]
    assert not_ok / frames["sent"] - 1e-9 <= miss <= 1.0
    for stage in ("decode", "queue", "infer", "total_server"):
        assert report["stage_ms"][stage] is not None
        assert report["stage_ms"][stage] >= 0
    assert report["stage_ms"]["total_server"] <= e2e["max"]
    # the generator's own lateness is reported apart: e2e from the send is e2e less the lag
    assert frames["client_skipped"] == 0
    assert report["stage_ms"]["send_lag"] is not None
    assert 0 < report["e2e_from_sent_ms"]["p50"] <= e2e["p50"] + 1e-6
    assert report["config"]["pacing"]["mode"] == "sleep+spin"
    config = report["config"]
    assert (config["streams"], config["fps"], config["duration_s"]) == (streams, fps, duration)
    assert config["budget_ms"] > 0
    assert set(report["machine"]) >= {"cpu", "cores", "gpu", "provider"}
    assert report["machine"]["provider"] == "CPUExecutionProvider"


def test_bench_spawns_a_server_and_reports_consistent_numbers(tmp_path, frames_dir, model, capsys):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    streams, fps, duration = 2, 60.0, 2.0
    code = cli.main(
        [
            "--spawn",
            "--streams", str(streams),
            "--fps", str(fps),
            "--duration", str(duration),
            "--warmup", "0.5",
            "--frames", str(frames_dir),
            "--size", "320x180",
            "--quality", "80",
            "--baselines",
            "--naive-drain", "3",
            "--json", str(out_json),
            "--plot", str(out_png),
            "--", "--model", str(model),
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out_json.read_text())
    check_report(report, streams, fps, duration)
    assert report["sweep"] is None
    assert report["config"]["distinct_frames"] == 6  # the text file is not a frame
    assert report["config"]["budget_ms"] == pytest.approx(1000.0 / fps, abs=1e-3)
    assert report["config"]["model_name"] == "colour"

    # The floor and the ratios come from this very run.
    floor, bare = report["floor_ms"], report["bare_model_ms"]
    assert 0 < bare["p50"] <= floor["p50"] <= floor["p99"]
    assert report["overhead_ratio_p50"] == round(report["e2e_ms"]["p50"] / floor["p50"], 4)
    assert report["overhead_ratio_p99"] == round(report["e2e_ms"]["p99"] / floor["p99"], 4)
    # ... and the floor paced at the stream's rate, which is what one stream's frame can cost
    paced = report["floor_paced_ms"]
    assert report["floor_paced_fps"] == fps
    assert 0 < paced["p50"] <= paced["p99"]
    assert report["overhead_ratio_paced_p50"] == round(report["e2e_ms"]["p50"] / paced["p50"], 4)
    assert report["overhead_ratio_paced_p99"] == round(report["e2e_ms"]["p99"] / paced["p99"], 4)
    # floor_mean_ms is rounded to 0.001 ms in the JSON: with a sub-millisecond model that rounding alone
    # moves 1000 / mean by up to 0.0005 / mean (relative)
    mean = report["floor_mean_ms"]
    assert report["floor_max_rate_fps"] == pytest.approx(1000.0 / mean, rel=1e-3 + 0.0005 / mean)
    # served_vs_floor_rate is rounded to 4 decimals: on a fast CPU the floor's rate is high and the ratio
    # small (0.03 here), so that rounding alone (up to 5e-5) can be more than 0.1 % of it
    assert report["served_vs_floor_rate"] == pytest.approx(
        report["answered_fps"]["total"] / report["floor_max_rate_fps"], rel=1e-3, abs=5e-5 + 1e-9
    )
    assert report["baselines_skipped"] is None

    naive = report["naive"]
    if HAS_TORCH:
        assert naive["skipped"] is None
        assert naive["e2e_ms"]["p50"] <= naive["e2e_ms"]["p99"]
        assert naive["throughput_fps"] > 0
        assert naive["ours_over_naive_p50"] == round(report["e2e_ms"]["p50"] / naive["e2e_ms"]["p50"], 4)
    else:
        assert naive["e2e_ms"] is None
        assert naive["answered_fps"] is None
        assert "torch" in naive["skipped"]
        assert "skipped" in naive["skipped"]

    if HAS_MATPLOTLIB:
        assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert any("matplotlib" in note for note in report["notes"])
    printed = capsys.readouterr().out
    assert "e2e ms" in printed
    assert "ours/floor" in printed
    assert "ours/paced floor" in printed


def test_sweep_runs_each_configuration_against_one_server(tmp_path, frames_dir, model, capsys):
    out_json = tmp_path / "sweep.json"
    code = cli.main(
        [
            "--spawn", "--sweep", "streams=1,3", "--fps", "30", "--duration", "1", "--warmup", "0",
            "--frames", str(frames_dir), "--size", "160x90", "--json", str(out_json),
            "--", "--model", str(model),
        ]
    )  # fmt: skip
    assert code == 0
    document = json.loads(out_json.read_text())
    assert document["sweep"] == {"param": "streams", "values": [1, 3]}
    assert [run["config"]["streams"] for run in document["runs"]] == [1, 3]
    for run, streams in zip(document["runs"], (1, 3), strict=True):
        check_report(run, streams, 30.0, 1.0)
        assert run["floor_ms"]["p50"] is None
        assert run["overhead_ratio_p50"] is None
        assert run["naive"]["skipped"]
        assert run["baselines_skipped"]
    table = capsys.readouterr().out
    assert "streams" in table
    assert "p99" in table


async def test_open_loop_keeps_its_schedule_while_a_slow_server_queues(frames_dir):
    """A server slower than the send rate must not slow the sender (closed loop would), and the
    time frames wait in the server shows in their latency. The server takes 35 ms per frame, one
    at a time, keeping only the newest waiting frame like vr-serve: slower than 60 fps on any machine."""
    frames = frames_from_folder(frames_dir, (320, 180), 80)
    fps, duration = 60.0, 2.0
    async with running_peer(seconds_per_frame=0.035) as url:
        config = LoadConfig(url=url, streams=1, fps=fps, duration_s=duration, budget_ms=5000.0)
        run = await run_load(config, frames)
    record = run.streams[0]
    sent_all = np.isfinite(record.sent)
    assert sent_all.all()
    lag_ms = (record.sent - record.scheduled) * 1000.0
    assert np.median(lag_ms) < 5.0  # sent when scheduled, not when the previous answer came
    span = record.sent[-1] - record.sent[0]
    assert span == pytest.approx((len(record.sent) - 1) / fps, abs=0.25)

    report = summarize(run).report
    frames_count = report["frames"]
    assert frames_count["sent"] == round(fps * duration)
    # The server cannot keep up: the one-slot mailbox drops stale frames, answers fewer than sent.
    assert frames_count["dropped_stale"] > 0
    assert report["answered_fps"]["total"] < fps
    # Latency is measured from the schedule: it includes the wait in the server's mailbox and queue.
    infer = report["stage_ms"]["infer"]
    assert report["e2e_ms"]["p50"] >= report["stage_ms"]["total_server"] >= infer > 1000.0 / fps / 4
    ok = [s == "ok" for s in record.status]
    latency = (record.answered - record.scheduled)[ok] * 1000.0
    server_total = np.array([t["total"] for t, good in zip(record.timings_ms, ok, strict=True) if good])
    assert (latency >= server_total - 0.5).all()


def test_statistics_on_a_hand_made_run():
    """Counts, miss rate and the age definition on records whose answers are known exactly."""
    fps = 10.0
    scheduled = np.arange(6) / fps  # 0.0 .. 0.5 s
    record = StreamRecord.empty(scheduled)
    record.sent[:] = scheduled + 0.001
    outcomes = [("ok", 0.03), ("dropped_stale", 0.01), ("ok", 0.25), ("late", 0.05), ("error", 0.02)]
    for frame_id, (status, latency) in enumerate(outcomes):
        record.status[frame_id] = status
        record.answered[frame_id] = scheduled[frame_id] + latency
        record.timings_ms[frame_id] = {"decode": 1.0, "queue": 2.0, "infer": 3.0, "total": 6.5}
    # frame 5 is never answered
    config = LoadConfig(url="", streams=1, fps=fps, duration_s=0.6, budget_ms=100.0)
    report = summarize(LoadRun(config=config, streams=[record], measured_from=0)).report
    assert report["frames"] == {
        "scheduled": 6, "sent": 6, "answered": 2, "dropped_stale": 1, "late": 1, "errors": 1, "unanswered": 1,
        "client_skipped": 0,
    }  # fmt: skip
    assert report["e2e_ms"]["p50"] == pytest.approx(140.0)
    assert report["e2e_ms"]["max"] == pytest.approx(250.0)
    # frame 2 was ok but over the 100 ms budget: 5 of 6 missed
    assert report["deadline_miss_rate"] == pytest.approx(5 / 6, abs=1e-6)
    assert report["answered_fps"]["total"] == pytest.approx(2 / 0.6, abs=1e-3)
    assert report["stage_ms"]["infer"] == 3.0
    assert report["stage_ms"]["total_server"] == 6.5

    # Ticks at 0.1..0.5 s (0.0 precedes every answer). Frame 0 (scheduled 0.0) is answered at 0.03;
    # frame 2 (scheduled 0.2) at 0.45. So ages are 100, 200, 300, 400 ms, then 500 - 200 = 300 ms.
    ages = answer_age_ms(record, 0)
    assert ages == pytest.approx([100.0, 200.0, 300.0, 400.0, 300.0])
    assert not any(math.isnan(a) for a in ages)


def test_frames_a_client_never_sent_are_misses_and_labels_are_tallied_per_distinct_frame():
    """A one-in-flight client skips frames: they are not `sent`, count as `client_skipped` and as misses
    (over scheduled frames), and the labels of the ok answers map back to the distinct frames."""
    fps = 10.0
    scheduled = np.arange(4) / fps
    record = StreamRecord.empty(scheduled, first_frame=1)  # frame ids 0..3 carry distinct frames 1, 2, 0, 1
    record.sent[[0, 3]] = scheduled[[0, 3]]
    record.answered[[0, 3]] = scheduled[[0, 3]] + 0.02
    record.status[:] = ["ok", CLIENT_SKIPPED, CLIENT_SKIPPED, "ok"]
    record.labels[:] = ["green", None, None, "green"]
    config = LoadConfig(url="", streams=1, fps=fps, duration_s=0.4, budget_ms=100.0)
    run = LoadRun(config=config, streams=[record], measured_from=0)
    report = summarize(run).report
    assert report["frames"]["sent"] == 2
    assert report["frames"]["client_skipped"] == 2
    assert report["frames"]["scheduled"] == 4
    assert report["deadline_miss_rate"] == pytest.approx(0.5)
    assert top1_by_frame(run, 3) == [None, "green", None]
    assert top1_agreement(run, [None, "green", None]) == 1.0
    assert top1_agreement(run, [None, "red", None]) == 0.0


async def test_the_pacer_never_sends_early_and_keeps_its_margin_bounded():
    pacer = Pacer()
    start = time.monotonic() + 0.01
    for i in range(40):
        deadline = start + i * 0.005
        await pacer.sleep_until(deadline)
        assert time.monotonic() >= deadline
    assert 0.0003 <= pacer.margin_s <= 0.002
    info = pacer.info()
    assert info["mode"] == "sleep+spin"
    assert info["spin_ms_per_send"] >= 0


async def test_open_loop_streams_reconnect_through_a_server_restart(frames_dir, tmp_path):
    """A server stopped mid-run (close 1001) and started again on the same port: the stream goes on,
    the frames of the outage count as unanswered, and the report gives the reconnect and the gap."""
    from tests.client_harness import free_port
    from tests.server_helpers import serving

    model = write_colour_model(tmp_path / "colour.onnx")
    frames = frames_from_folder(frames_dir, (320, 180), 80)
    port = free_port()
    config = LoadConfig(url=f"ws://127.0.0.1:{port}", streams=2, fps=30.0, duration_s=3.0, budget_ms=5000.0)
    async with serving(model, port=port) as first:
        load = asyncio.create_task(run_load(config, frames))
        await asyncio.sleep(1.0)
        await first.shutdown()
    await asyncio.sleep(0.5)  # nothing listens: the streams' attempts are refused meanwhile
    async with serving(model, port=port):
        run = await load
    report = summarize(run).report
    assert report["reconnects"] == [1, 1]
    assert all(r.failure is None for r in run.streams)
    assert 500.0 <= report["longest_answer_gap_ms"] <= 3000.0
    counts = report["frames"]
    assert counts["sent"] < counts["scheduled"]  # frames of the outage were not sent, not queued
    assert counts["unanswered"] + (counts["scheduled"] - counts["sent"]) >= 2 * 10  # 0.5 s at 30 Hz, x2
    for record in run.streams:  # answered before and after the outage
        ok = np.flatnonzero([s == "ok" for s in record.status])
        assert ok.min() < 20
        assert ok.max() > 70
