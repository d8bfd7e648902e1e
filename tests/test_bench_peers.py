"""vr-bench --peers: Triton (PyTriton) and LitServe serve the same tiny model next to vr-serve, each
from a venv vr-bench makes (pinned, cached in .venv-peers/ or $VR_BENCH_PEERS_DIR), started and loaded
by vr-bench's own code in both client modes. Checked: every server answers every distinct frame
with the right colour, the rows carry the same keys as vr-serve's report, the counts add up.

A peer whose venv cannot be made here (no registry access) skips with pip's reason on a developer's
machine; under CI=true that skip is a failure (tests/conftest.py). Measured on a 2-core machine:
the comparison test takes ~25 s with the venvs cached; making both venvs adds ~50 s from a warm pip
cache, ~75 s with pip's cache off.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.onnx_models import write_colour_model
from tests.server_helpers import COLOURS_BGR
from vr_recognition.bench import cli
from vr_recognition.bench.pacing import Pacer
from vr_recognition.bench.peers import drive
from vr_recognition.bench.peers.specs import ONE_IN_FLIGHT, OPEN_LOOP, PEERS
from vr_recognition.bench.peers.venvs import ENV_DIR, ensure_venv, requirements_for, venv_key
from vr_recognition.bench.records import CLIENT_SKIPPED, StreamRecord, schedule

ROOT = Path(__file__).resolve().parents[1]
COLOURS = ("red", "green", "blue")  # frame files sort in this order: distinct frame i is COLOURS[i]
SUMMARY_KEYS = {"e2e_ms", "deadline_miss_rate", "frames", "answered_fps", "throughput_fps", "stream_share",
                "age_ms", "stage_ms", "send_lag_ms", "e2e_from_sent_ms"}  # fmt: skip


@pytest.fixture(scope="module")
def peers_dir() -> Path:
    import os

    return Path(os.environ.get(ENV_DIR) or ROOT / ".venv-peers")


@pytest.fixture(scope="module")
def peer_venvs(peers_dir: Path) -> dict[str, float | None]:
    """Both venvs, made here when missing (how long that took, None when cached)."""
    made = {}
    for name in ("triton", "litserve"):
        try:
            made[name] = ensure_venv(PEERS[name], peers_dir, log=print).created_s
        except Exception as exc:
            pytest.skip(f"the {name} venv could not be made here: {str(exc)[-600:]}")
    return made


@pytest.fixture(scope="module")
def colour_frames(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("colour-frames")
    rng = np.random.default_rng(0)
    for index, colour in enumerate(COLOURS):
        image = np.zeros((180, 320, 3), np.uint8)
        image[:] = COLOURS_BGR[colour]
        image = cv2.subtract(image, rng.integers(0, 40, image.shape, dtype=np.uint8))
        cv2.imwrite(str(folder / f"{index}_{colour}.jpg"), image)
    return folder


@pytest.mark.slow
def test_peers_serve_the_same_model_and_report_the_same_keys(
    tmp_path, peer_venvs, peers_dir, colour_frames, capsys
):
    model = write_colour_model(tmp_path / "colour.onnx")
    out = tmp_path / "peers.json"
    started = time.perf_counter()
    code = cli.main(
        [
            "--spawn", "--streams", "2", "--fps", "20", "--duration", "2", "--warmup", "0.5", "--drain", "2",
            "--frames", str(colour_frames), "--size", "320x180",
            "--peers", "triton,litserve", "--peers-dir", str(peers_dir), "--json", str(out),
            "--", "--model", str(model), "--threads", "1",
        ]
    )  # fmt: skip
    print(f"\n[peer comparison: {time.perf_counter() - started:.0f} s; venvs made in {peer_venvs}]")
    assert code == 0
    report = json.loads(out.read_text())
    section = report["peers"]
    assert section["skipped"] is None
    assert section["asked"] == ["triton", "litserve"]
    assert section["modes"] == [OPEN_LOOP, ONE_IN_FLIGHT]
    # One server at a time: a peer runs its modes back to back between its start and its stop.
    peers_in_order = [entry.split()[0] for entry in section["order"] if entry != "vr-serve"]
    assert peers_in_order in (["triton"] * 2 + ["litserve"] * 2, ["litserve"] * 2 + ["triton"] * 2)
    assert sorted(section["order"]) == sorted(
        [
            "vr-serve",
            "triton open-loop",
            "triton one-in-flight",
            "litserve open-loop",
            "litserve one-in-flight",
        ]
    )
    rows = section["rows"]
    assert [(r["server"], r["mode"]) for r in rows] == [
        ("vr-serve", OPEN_LOOP),
        ("triton", OPEN_LOOP),
        ("triton", ONE_IN_FLIGHT),
        ("litserve", OPEN_LOOP),
        ("litserve", ONE_IN_FLIGHT),
    ]
    for row in rows:
        label = f"{row['server']} {row['mode']}"
        assert row["skipped"] is None, f"{label}: {row['skipped']}"
        assert set(row) >= SUMMARY_KEYS, label
        frames = row["frames"]
        assert frames["scheduled"] == 2 * 20 * 2
        assert frames["scheduled"] == frames["sent"] + frames["client_skipped"], label
        assert frames["sent"] == (
            frames["answered"]
            + frames["dropped_stale"]
            + frames["late"]
            + frames["errors"]
            + frames["unanswered"]
        ), label
        assert frames["answered"] > 0, label
        assert frames["errors"] == 0, label
        assert row["provider"] == "CPUExecutionProvider", label
        # the right answer for every distinct frame, from every server
        assert row["top1_by_frame"] == list(COLOURS), label
        assert 0 < row["e2e_ms"]["p50"] <= row["e2e_ms"]["p99"], label
        assert row["age_ms"]["p50"] >= 1000.0 / 20 - 0.01, label
        assert row["stage_ms"]["decode"] is not None, label
        assert row["stage_ms"]["infer"] is not None, label
    for row in rows[1:]:
        assert row["top1_agreement"] == 1.0
        assert row["settings"]
    assert "REJECT" in rows[1]["settings"]
    assert "batch timeout" in rows[3]["settings"]
    # the top-level report is still vr-serve's, with the same numbers as its row
    assert report["e2e_ms"] == rows[0]["e2e_ms"]
    printed = capsys.readouterr().out
    assert "servers compared" in printed
    assert "litserve" in printed


def test_each_peer_venv_is_pinned_and_follows_the_hosts_onnxruntime():
    for spec in PEERS.values():
        pins = requirements_for(spec)
        assert all("==" in pin for pin in pins), pins
        assert any(pin.startswith(("onnxruntime==", "onnxruntime-gpu==")) for pin in pins), pins
    assert "numpy==1.26.4" in requirements_for(PEERS["triton"])  # PyTriton needs numpy < 2
    assert venv_key(["a==1"]) != venv_key(["a==2"])


class FakePeer:
    """A request/response server that takes `seconds` per request and answers the frame's index."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.in_flight, self.most_in_flight, self.calls = seconds, 0, 0, 0

    async def __call__(self, index: int) -> tuple:
        self.in_flight += 1
        self.calls += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.seconds)
        self.in_flight -= 1
        return ("ok", str(index), {"infer": self.seconds * 1000}, None)


async def run_fake(
    mode: str, seconds: float, fps: float = 50.0, count: int = 40
) -> tuple[StreamRecord, FakePeer]:
    record = StreamRecord.empty(schedule(time.monotonic() + 0.05, fps, count, 0.0), first_frame=2)
    peer = FakePeer(seconds)
    await drive.run_stream(peer, record, 3, mode, Pacer(), 2.0, {})
    return record, peer


async def test_open_loop_sends_every_frame_on_time_whatever_is_in_flight():
    record, peer = await run_fake(OPEN_LOOP, seconds=0.07)  # slower than the 20 ms interval
    assert np.isfinite(record.sent).all()
    assert peer.most_in_flight >= 3
    assert np.median(record.sent - record.scheduled) < 0.005
    assert record.status == ["ok"] * 40
    assert record.labels[0] == "2"  # frame id 0 carries distinct frame first_frame


async def test_one_in_flight_sends_the_newest_frame_when_the_answer_is_back():
    record, peer = await run_fake(ONE_IN_FLIGHT, seconds=0.07)
    assert peer.most_in_flight == 1
    sent = np.flatnonzero(np.isfinite(record.sent))
    skipped = [i for i, s in enumerate(record.status) if s == CLIENT_SKIPPED]
    assert skipped
    assert sorted([*sent.tolist(), *skipped]) == list(range(40))
    for previous, following in itertools.pairwise(sent):
        # each send goes right after the previous answer (not at the next tick), with the newest frame
        assert record.sent[following] - record.answered[previous] < 0.015
        assert all(record.status[i] == CLIENT_SKIPPED for i in range(previous + 1, following))
        assert record.scheduled[following] <= record.answered[previous] + 1e-3
    assert all(record.status[i] == "ok" for i in sent)
