"""The reference client's reconnect (server/reconnect.py): its rules as pure code, and real servers on
loopback that stop gracefully, die with SIGKILL, or refuse; every frame id is accounted for once."""

from __future__ import annotations

import asyncio
import random
import signal

import pytest

from tests.client_harness import documented_closes, free_port
from tests.onnx_models import write_colour_model
from tests.server_helpers import ServerProcess, serving, solid_jpeg
from vr_recognition.server import protocol as p
from vr_recognition.server.client import ServerRefused
from vr_recognition.server.reconnect import (
    Backoff,
    Disconnected,
    NotAnswered,
    Reconnected,
    ReconnectingClient,
    is_client_fault,
    reconnects,
)

PATIENT = p.StreamSettings(budget_ms=30_000)
FAST = dict(initial_s=0.05, max_s=0.2)


def test_backoff_grows_to_its_cap_with_jitter_around_each_step():
    backoff = Backoff(rng=random.Random(3))
    assert backoff.delay(0) == 0.0
    for failures, base in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0), (60, 10.0)]:
        delays = [backoff.delay(failures) for _ in range(200)]
        assert all(0.8 * base <= d <= 1.2 * base for d in delays), (failures, min(delays), max(delays))
        assert max(delays) - min(delays) > 0.2 * base  # really jittered, not one value


def test_every_documented_close_but_1002_reconnects_and_client_faults_are_the_documented_ones():
    closes = documented_closes()
    assert {code for code, _ in closes} >= {1001, 1002, 1007, 1008, 1009, 1011, 4013}
    for code, reason in closes:
        assert reconnects(code) == (code != 1002), (code, reason)
        assert is_client_fault(code, reason) == (
            code in (1007, 1009) or (code, reason) == (1008, "hello_required")
        ), (code, reason)
    assert reconnects(None)  # no close frame: a lost network or a killed replica


async def drain(client: ReconnectingClient, until, timeout: float = 30.0) -> list:
    """Read events until `until(event)` is true; returns them all, the last one included."""
    events = []
    async with asyncio.timeout(timeout):
        while True:
            events.append(await client.recv())
            if until(events[-1]):
                return events


def accounted(events: list) -> list[int]:
    """Frame ids answered or reported not answered, in event order."""
    ids = []
    for event in events:
        answers = isinstance(event, (p.Result, p.ErrorMessage)) and event.frame_id is not None
        if answers or isinstance(event, NotAnswered):
            ids.append(event.frame_id)
    return ids


async def test_a_graceful_stop_and_a_new_server_on_the_same_port(tmp_path):
    path = write_colour_model(tmp_path / "model.onnx")
    port = free_port()
    frame = solid_jpeg("green")
    sent: list[int] = []
    async with serving(path, port=port) as first:
        url = f"ws://127.0.0.1:{port}"
        assert first.port == port
        client = ReconnectingClient(url, settings=PATIENT, backoff=Backoff(**FAST))
        async with client:
            await client.connected(timeout=10)
            for _ in range(3):
                sent.append(await client.send_frame(frame, width=320, height=180))
            events = await drain(client, lambda e: sent[-1] in accounted([e]))
            await first.shutdown()  # answers what it holds, a fatal shutting_down, close 1001
            events += await drain(client, lambda e: isinstance(e, Disconnected))
            # no server now: a frame is reported at once, not queued
            sent.append(await client.send_frame(frame, width=320, height=180))
            events += await drain(client, lambda e: isinstance(e, NotAnswered))
            async with serving(path, port=port):
                await client.connected(timeout=30)
                for _ in range(3):
                    sent.append(await client.send_frame(frame, width=320, height=180))
                events += await drain(client, lambda e: sent[-1] in accounted([e]))
            assert client.reconnects == 1
    end = next(e for e in events if isinstance(e, Disconnected))
    assert (end.close_code, end.close_reason, end.was_connected, end.will_reconnect) == (
        1001,
        "shutting_down",
        True,
        True,
    )
    assert any(isinstance(e, p.ErrorMessage) and e.code == "shutting_down" and e.fatal for e in events)
    assert sum(isinstance(e, Reconnected) for e in events) == 1
    assert sorted(accounted(events)) == sent  # every frame once
    assert [e for e in events if isinstance(e, NotAnswered)] == [NotAnswered(sent[3], "not_connected")]
    results = {e.frame_id: e for e in events if isinstance(e, p.Result)}
    assert sorted(results) == sent[:3] + sent[4:]
    # frames sent back to back: the newest of each burst is answered, an older one may be dropped stale
    assert {r.status for r in results.values()} <= {p.Status.OK, p.Status.DROPPED_STALE}
    for newest in (sent[2], sent[-1]):
        assert (results[newest].status, results[newest].top_k[0].label) == (p.Status.OK, "green")


def test_a_killed_replica_reports_its_in_flight_frames_and_the_stream_goes_on(tmp_path):
    """SIGKILL: no close frame, frames in flight; the client reports them and reconnects to a new
    process on the same port."""
    path = write_colour_model(tmp_path / "model.onnx")
    port = free_port()
    args = ["--model", str(path), "--max-batch", "1", "--port", str(port)]
    slow = ServerProcess(args, tmp_path / "slow.log", seconds_per_batch=2.0)
    replacement = None
    try:

        async def scenario() -> tuple[list, list[int], ReconnectingClient]:
            nonlocal replacement
            frame = solid_jpeg("green")
            sent = []
            client = ReconnectingClient(slow.url, settings=PATIENT, backoff=Backoff(**FAST))
            async with client:
                await client.connected(timeout=30)
                for _ in range(2):
                    sent.append(await client.send_frame(frame, width=320, height=180))
                await client.client.ping()  # the frames are in the server, the first one in the model
                slow.proc.send_signal(signal.SIGKILL)
                events = await drain(client, lambda e: isinstance(e, Disconnected))
                replacement = await asyncio.to_thread(ServerProcess, args, tmp_path / "new.log")
                await client.connected(timeout=60)
                sent.append(await client.send_frame(frame, width=320, height=180))
                events += await drain(client, lambda e: sent[-1] in accounted([e]))
            return events, sent, client

        events, sent, client = asyncio.run(scenario())
    finally:
        slow.stop()
        if replacement is not None:
            replacement.stop()
    first_end = next(e for e in events if isinstance(e, Disconnected))
    assert (first_end.close_code, first_end.was_connected, first_end.will_reconnect) == (None, True, True)
    lost = [e for e in events if isinstance(e, NotAnswered)]
    assert lost == [NotAnswered(sent[0], "connection_lost"), NotAnswered(sent[1], "connection_lost")]
    assert sorted(accounted(events)) == sent
    answer = next(e for e in events if isinstance(e, p.Result))
    assert (answer.frame_id, answer.status, answer.top_k[0].label) == (sent[2], p.Status.OK, "green")
    assert client.reconnects == 1


async def test_a_wrong_token_stops_the_client_instead_of_retrying(tmp_path):
    path = write_colour_model(tmp_path / "model.onnx")
    async with serving(path, token="right") as server:
        client = ReconnectingClient(server.url, token="wrong", backoff=Backoff(**FAST))
        async with client:
            with pytest.raises(ServerRefused, match="unauthorized"):
                await client.connected(timeout=10)
            end = await client.recv(timeout=5)
            assert isinstance(end, Disconnected)
            assert (end.close_reason, end.was_connected, end.will_reconnect) == ("unauthorized", False, False)
            with pytest.raises(ServerRefused):
                await client.recv(timeout=5)  # and every later read says why
            assert client.connections == 0
