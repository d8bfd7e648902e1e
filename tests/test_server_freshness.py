"""Freshness over completeness: the one-slot mailbox, the deadline batcher with a deliberately slow
model, and the live server dropping stale frames (answered and counted, never queued).

"Slow" is always a fixed time (a sleep per batch), never a heavy graph: arithmetic gets faster with the
CPU, and on a fast one the server would keep up and nothing would be stale or late."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from tests.onnx_models import write_colour_model
from tests.server_helpers import classify, metric_value, serving, slow_down, solid_jpeg
from vr_recognition.server import protocol as p
from vr_recognition.server.batcher import BatchItem, DeadlineBatcher
from vr_recognition.server.client import RecognitionClient
from vr_recognition.server.mailbox import LatestSlot


async def test_latest_slot_keeps_only_the_newest():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1  # 1 is now stale, handed back to be answered
    assert await slot.take() == 2
    taker = asyncio.create_task(slot.take())
    await asyncio.sleep(0.01)
    assert not taker.done()  # waits for a frame
    slot.put(3)
    assert await taker == 3
    slot.put(4)
    slot.close()
    assert await slot.take() == 4  # a waiting frame is still answered after close
    assert await slot.take() is None
    with pytest.raises(RuntimeError):
        slot.put(5)


class SlowModel:
    """A deliberately slow model: sleeps per batch, records the batches it saw."""

    def __init__(self, seconds: float, fail: bool = False) -> None:
        self.seconds = seconds
        self.fail = fail
        self.batches: list[int] = []
        self.thread_names: set[str] = set()
        self.started = threading.Event()  # set when a batch starts running

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.thread_names.add(threading.current_thread().name)
        self.started.set()
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("model exploded")
        self.batches.append(len(batch))
        return np.tile(batch.reshape(len(batch), -1)[:, :1].astype(np.float32), (1, 2))


async def busy(model: SlowModel) -> None:
    """Wait until `model` is running a batch, rather than guess how soon the batcher starts one."""
    assert await asyncio.to_thread(model.started.wait, 10)


def item(model, value: int, budget_s: float = 10.0, turn=None) -> BatchItem:
    return BatchItem(np.full((2, 2, 3), value, np.uint8), time.perf_counter() + budget_s, model, turn=turn)


async def test_batcher_batches_what_arrived_while_busy():
    model = SlowModel(0.1)
    batcher = DeadlineBatcher(max_batch=4)
    batcher.start()
    try:
        first = asyncio.create_task(batcher.submit(item(model, 1)))
        await busy(model)  # the first batch is running now
        rest = [asyncio.create_task(batcher.submit(item(model, v))) for v in (2, 3, 4, 5, 6)]
        outcomes = await asyncio.gather(first, *rest)
    finally:
        await batcher.stop()
    assert model.batches == [1, 4, 1]  # 5 waiting frames: a full batch of 4, then 1
    assert [o.probabilities[0] for o in outcomes] == [1, 2, 3, 4, 5, 6]  # each got its own row
    assert model.thread_names == {"inference_0"}
    assert outcomes[1].queue_s >= 0.05  # waited for the first batch


async def test_turn_comes_when_the_model_is_about_to_be_free():
    """A frame is chosen late: its turn to be decoded comes `lead` before the running batch ends."""
    model = SlowModel(0.3)
    batcher = DeadlineBatcher(max_batch=4)
    batcher.start()
    try:
        await asyncio.wait_for(batcher.turn(0.05), 1)  # idle model: no batch to wait for
        await batcher.submit(item(model, 1))  # teaches the batcher a batch takes ~0.3 s
        running = asyncio.create_task(batcher.submit(item(model, 2)))
        await busy(model)
        model.started.clear()
        began = time.perf_counter()
        await asyncio.wait_for(batcher.turn(0.1), 5)
        waited = time.perf_counter() - began
        assert running.done() is False  # the turn came while the model is still busy ...
        assert waited >= 0.1  # ... not at once: it waited for the batch to near its end
        await running
    finally:
        await batcher.stop()


async def test_turns_are_one_batch_at_a_time_and_go_to_who_gains_most():
    """With more streams than a batch holds, only a batch's worth choose their frame while the model
    runs (the others would choose now and wait a batch with it); the places go to the highest
    priority, and free up as the chosen frames' batch starts."""
    model = SlowModel(0.2)
    batcher = DeadlineBatcher(max_batch=2)
    batcher.start()
    try:
        await batcher.submit(item(model, 1))  # teaches the batcher a batch takes ~0.2 s
        model.started.clear()
        running = asyncio.create_task(batcher.submit(item(model, 2)))
        await busy(model)
        turns = {
            gain: asyncio.create_task(batcher.turn(0.05, priority=lambda g=gain: g)) for gain in (1, 4, 2, 3)
        }
        await asyncio.wait(turns.values(), timeout=1.0)  # well past the running batch's end
        assert sorted(gain for gain, task in turns.items() if task.done()) == [3, 4]
        await running
        chosen = [asyncio.create_task(batcher.submit(item(model, g, turn=turns[g].result()))) for g in (3, 4)]
        await asyncio.wait_for(asyncio.gather(turns[1], turns[2]), 5)  # their batch started: places free
        await asyncio.gather(*chosen)
        for gain in (1, 2):
            turns[gain].result().give_back()
    finally:
        await batcher.stop()
    assert model.batches == [1, 1, 2]


async def test_a_frame_alone_is_decoded_and_run_in_one_hop():
    """With the model idle and nothing else waiting, decode and inference run as one call on the
    inference thread; with anything waiting (here a batch on the model) nothing is done and the
    caller goes the usual way, through the decode pool and a batch."""
    model = SlowModel(0.2)
    batcher = DeadlineBatcher(max_batch=2)
    batcher.start()
    decoded_on = []

    def prepare() -> np.ndarray:
        decoded_on.append(threading.current_thread().name)
        return np.full((2, 2, 3), 7, np.uint8)

    try:
        decode_s, outcome = await batcher.run_alone(prepare, model, await batcher.turn(0.0))
        assert decoded_on == ["inference_0"]
        assert model.thread_names == {"inference_0"}
        assert (outcome.late, outcome.batch_size, outcome.probabilities[0]) == (False, 1, 7.0)
        assert decode_s >= 0
        assert outcome.infer_s >= 0.2
        running = asyncio.create_task(batcher.submit(item(model, 1)))
        await busy(model)
        turn = await batcher.turn(10.0)  # granted at once: a lead longer than the batch left
        assert await batcher.run_alone(prepare, model, turn) is None
        assert decoded_on == ["inference_0"]  # not called
        turn.give_back()
        await running
    finally:
        await batcher.stop()
    assert model.batches == [1, 1]


async def test_a_batch_waits_for_the_frame_alone_on_the_model():
    """A frame submitted while a frame alone runs starts its batch after it: its inference time is its
    own, not the wait behind the other on the inference thread."""
    model = SlowModel(0.3)
    batcher = DeadlineBatcher(max_batch=2)
    batcher.start()
    try:
        alone = asyncio.create_task(
            batcher.run_alone(lambda: np.zeros((2, 2, 3), np.uint8), model, await batcher.turn(0.0))
        )
        await busy(model)
        queued = await batcher.submit(item(model, 3))
        await alone
    finally:
        await batcher.stop()
    assert queued.queue_s >= 0.15  # it waited for the frame alone ...
    assert queued.infer_s < 0.5  # ... outside its own inference time (0.3 s, not 0.3 + the wait)


async def test_live_turn_comes_back_when_a_frame_fails_to_decode(tmp_path, monkeypatch):
    """A chosen frame that never reaches a batch (it fails to decode in the decode pool, the model
    being busy with another stream's frame) gives its turn back: with one place per batch, the next
    frame would otherwise wait for ever."""
    model = write_colour_model(tmp_path / "colour.onnx")
    async with (
        serving(model, max_batch=1) as server,
        await RecognitionClient.connect(server.url) as busy_client,
        await RecognitionClient.connect(server.url) as client,
    ):
        assert (await classify(busy_client, "blue")).status is p.Status.OK  # teaches a batch's time
        model_running = slow_down(monkeypatch, server, 1.0)
        await busy_client.send_frame(solid_jpeg("blue"), width=320, height=180)
        assert await asyncio.to_thread(model_running.wait, 30)  # the model is busy from here
        for _ in range(3):  # turns come at once (a batch is expected to take ms): decoded in the pool
            await client.send_frame(b"\x00garbage" * 50, width=320, height=180)
            assert (await client.recv(timeout=30)).status is p.Status.ERROR
        await client.send_frame(solid_jpeg("green"), width=320, height=180)
        result = await client.recv(timeout=30)
        assert (await busy_client.recv(timeout=30)).status is p.Status.OK
    assert (result.status, result.top_k[0].label) == (p.Status.OK, "green")


async def test_batcher_answers_late_frames_without_inference():
    model = SlowModel(0.15)
    for policy, expect_late in (("skip", True), ("infer", False)):
        batcher = DeadlineBatcher(max_batch=8, late_policy=policy)
        batcher.start()
        try:
            model.started.clear()  # the model is reused: wait for this run's first batch
            blocker = asyncio.create_task(batcher.submit(item(model, 1)))
            await busy(model)
            tight = asyncio.create_task(
                batcher.submit(item(model, 2, budget_s=0.05))
            )  # expires while waiting
            loose = asyncio.create_task(batcher.submit(item(model, 3, budget_s=5.0)))
            results = await asyncio.gather(blocker, tight, loose)
        finally:
            await batcher.stop()
        assert [r.late for r in results] == [False, expect_late, False]
        if expect_late:
            assert results[1].probabilities is None
            assert results[1].infer_s == 0.0
    assert model.batches == [1, 1, 1, 2]  # skip ran [blocker], [loose]; infer ran [blocker], [tight, loose]


async def test_batcher_runs_late_frames_when_nothing_fresher_waits():
    """Under overload an idle model only lowers throughput: the newest late frames are still run."""
    model = SlowModel(0.1)
    batcher = DeadlineBatcher(max_batch=1)
    batcher.start()
    try:
        blocker = asyncio.create_task(batcher.submit(item(model, 1)))
        await busy(model)
        only_late = [asyncio.create_task(batcher.submit(item(model, v, budget_s=0.01))) for v in (2, 3)]
        results = await asyncio.gather(blocker, *only_late)
    finally:
        await batcher.stop()
    assert [r.late for r in results] == [False, False, False]
    assert [r.probabilities[0] for r in results] == [1, 2, 3]


async def test_batcher_never_waits_past_the_earliest_deadline():
    model = SlowModel(0.0)
    batcher = DeadlineBatcher(max_batch=8, max_wait_s=1.0)  # would wait a second for company
    batcher.start()
    try:
        start = time.perf_counter()
        outcome = await batcher.submit(item(model, 1, budget_s=0.2))
        waited = time.perf_counter() - start
    finally:
        await batcher.stop()
    assert not outcome.late
    assert waited < 0.6  # released before the 200 ms deadline, not after the 1 s wait


async def test_batcher_never_mixes_models_and_survives_a_failing_one():
    good, bad = SlowModel(0.05), SlowModel(0.0, fail=True)
    batcher = DeadlineBatcher(max_batch=8)
    batcher.start()
    try:
        blocker = asyncio.create_task(batcher.submit(item(good, 1)))
        await busy(good)
        tasks = [asyncio.create_task(batcher.submit(item(m, v))) for m, v in ((bad, 2), (good, 3), (bad, 4))]
        results = await asyncio.gather(blocker, *tasks, return_exceptions=True)
        after = await batcher.submit(item(good, 5))  # the batcher still works
    finally:
        await batcher.stop()
    assert isinstance(results[1], RuntimeError)
    assert isinstance(results[3], RuntimeError)
    assert results[2].probabilities[0] == 3
    assert after.probabilities[0] == 5
    assert good.batches == [1, 1, 1]


async def test_live_server_drops_stale_frames_and_answers_every_frame(tmp_path, monkeypatch):
    model = write_colour_model(tmp_path / "colour.onnx")
    async with serving(model, max_batch=1) as server:
        slow_down(monkeypatch, server, 0.2)  # the burst arrives while the first frame takes 200 ms
        settings = p.StreamSettings(budget_ms=10_000)
        async with await RecognitionClient.connect(server.url, settings=settings) as client:
            frame = solid_jpeg("green", 640, 360)
            sent = [await client.send_frame(frame, width=640, height=360) for _ in range(30)]  # a burst
            results = [await client.recv(timeout=30) for _ in sent]
            stale_metric = metric_value(server, "vr_frames_dropped_stale_total")
    by_id = {r.frame_id: r for r in results}
    assert sorted(by_id) == sent  # exactly one answer per frame
    statuses = [by_id[i].status for i in sent]
    assert statuses.count(p.Status.DROPPED_STALE) >= 10  # the slow model cannot keep up with a burst
    assert statuses[-1] is p.Status.OK  # the newest frame is always answered
    assert stale_metric == statuses.count(p.Status.DROPPED_STALE)
    ok = [by_id[i] for i in sent if by_id[i].status is p.Status.OK]
    assert all(r.top_k[0].label == "green" for r in ok)
    assert all(r.top_k == () for r in results if r.status is p.Status.DROPPED_STALE)


@pytest.mark.parametrize("choice", ["late", "early"])
async def test_live_server_chooses_the_frame_when_the_model_frees_up(tmp_path, monkeypatch, choice):
    """Stream A's worker is free while the model runs stream B's frame. Choosing late, A's frame is
    picked when the model is about to be free, so a newer frame that arrives meanwhile replaces it;
    choosing early (the old behaviour), the older one is taken at once and waits for the model."""
    model = write_colour_model(tmp_path / "colour.onnx")
    async with serving(model, max_batch=1, frame_choice=choice) as server:
        started = slow_down(monkeypatch, server, 0.4)
        settings = p.StreamSettings(budget_ms=10_000)
        frame = {c: solid_jpeg(c, 320, 180) for c in ("red", "blue", "green")}
        async with (
            await RecognitionClient.connect(server.url, settings=settings) as a,
            await RecognitionClient.connect(server.url, settings=settings) as b,
        ):
            await b.send_frame(frame["red"], width=320, height=180)
            assert await asyncio.to_thread(started.wait, 10)  # B's frame is on the model now
            older = await a.send_frame(frame["blue"], width=320, height=180)
            await asyncio.sleep(0.1)
            newer = await a.send_frame(frame["green"], width=320, height=180)
            answers = {r.frame_id: r for r in [await a.recv(timeout=30) for _ in range(2)]}
            await b.recv(timeout=30)
    if choice == "late":
        assert answers[older].status is p.Status.DROPPED_STALE
        assert (answers[newer].status, answers[newer].top_k[0].label) == (p.Status.OK, "green")
    else:
        assert (answers[older].status, answers[older].top_k[0].label) == (p.Status.OK, "blue")


async def test_live_server_answers_late_frames_without_inference(tmp_path, monkeypatch):
    model = write_colour_model(tmp_path / "colour.onnx")
    # Early choice: both waiting frames are decoded while the hog's frame runs, and meet in the queue
    # (choosing late, they are decoded one by one as the model frees up and rarely meet).
    async with serving(model, max_batch=8, frame_choice="early") as server:
        model_running = slow_down(monkeypatch, server, 0.3)
        tight = p.StreamSettings(budget_ms=1.0)  # unmeetable: every frame waiting for the model is late
        patient = p.StreamSettings(budget_ms=10_000)
        async with (
            await RecognitionClient.connect(server.url, settings=patient) as hog,
            await RecognitionClient.connect(server.url, settings=tight) as hurried,
            await RecognitionClient.connect(server.url, settings=patient) as fresh,
        ):
            frame = solid_jpeg("blue", 320, 180)
            await hog.send_frame(frame, width=320, height=180)
            assert await asyncio.to_thread(model_running.wait, 30)  # busy with the hog's frame now
            await hurried.send_frame(frame, width=320, height=180)
            await fresh.send_frame(frame, width=320, height=180)
            results = [await c.recv(timeout=30) for c in (hog, hurried, fresh)]
    assert [r.status for r in results] == [p.Status.OK, p.Status.LATE, p.Status.OK]
    assert "infer" not in results[1].timings_ms
    assert results[1].top_k == ()
    assert metric_value(server, "vr_frames_late_total") == 1
