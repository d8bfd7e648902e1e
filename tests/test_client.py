"""The reference client against a real websocket server on loopback (the protocol peer)."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from tests.protocol_peer import running_peer
from vr_recognition.server import protocol as p
from vr_recognition.server.client import RecognitionClient, ServerRefused

JPEG = bytes.fromhex("ffd8ffe000104a4649460001")  # the peer does not decode images


async def test_hello_frames_and_echoes():
    async with running_peer() as url:
        client = await RecognitionClient.connect(url, settings=p.StreamSettings(top_k=1, fps=90.0))
        async with client:
            assert client.model.classes == ("jpeg", "rgb8", "rgba8")
            assert client.session.fps == 90.0
            pose = p.Pose((1.0, 2.0, 3.0), (0.0, 0.0, 0.0, 1.0))
            first = await client.send_frame(JPEG, width=4, height=4, pose=pose, gaze=(0.25, 0.75))
            second = await client.send_frame(bytes(12), width=2, height=2, image_format=p.ImageFormat.RGB8)
            assert (first, second) == (0, 1)
            a, b = await client.recv(timeout=5), await client.recv(timeout=5)
            assert isinstance(a, p.Result)
            assert isinstance(b, p.Result)
            assert (a.frame_id, a.top_k[0].label, a.pose, a.gaze) == (0, "jpeg", pose, (0.25, 0.75))
            assert (b.frame_id, b.top_k[0].label, b.pose) == (1, "rgb8", None)
            assert a.capture_time_us <= b.capture_time_us


async def test_ping_and_configure_while_results_flow():
    async with running_peer() as url, await RecognitionClient.connect(url) as client:
        await client.send_frame(JPEG, width=1, height=1)
        rtt = await client.ping()
        assert 0 < rtt < 5000
        configured = await client.configure(p.StreamSettings(top_k=3, budget_ms=8.0))
        assert (configured.session.top_k, configured.session.budget_ms) == (3, 8.0)
        assert client.session.top_k == 3
        result = await client.recv(timeout=5)  # the frame's result was kept for recv()
        assert isinstance(result, p.Result)


async def test_bad_frame_gets_a_typed_error_and_the_stream_goes_on():
    async with running_peer() as url, await RecognitionClient.connect(url) as client:
        await client.send_raw(b"JFIF" + bytes(80))
        error = await client.recv(timeout=5)
        assert isinstance(error, p.ErrorMessage)
        assert error.code == "bad_magic"
        good = p.encode_frame(p.Frame(9, 1, p.ImageFormat.RGB8, 2, 1, bytes(5) + b"\x00"))
        await client.send_raw(good[:-1])  # payload one byte short: header parsed, id known
        short = await client.recv(timeout=5)
        assert isinstance(short, p.Result)
        assert (short.frame_id, short.status, short.error.code) == (9, p.Status.ERROR, "length_mismatch")
        await client.send_frame(JPEG, width=1, height=1)
        assert (await client.recv(timeout=5)).status is p.Status.OK


async def test_token_refusal_surfaces_the_servers_error_code():
    async with running_peer(token="s3cret") as url:
        with pytest.raises(ServerRefused) as info:
            await RecognitionClient.connect(url)
        assert (info.value.code, info.value.http_status) == ("unauthorized", 401)
        with pytest.raises(ServerRefused):
            await RecognitionClient.connect(url, token="wrong")
        async with await RecognitionClient.connect(url, token="s3cret") as client:
            assert client.server_hello.server_name == "peer"


async def test_version_mismatch_is_refused_with_close_1002():
    async with running_peer() as url:
        from websockets.asyncio.client import connect

        async with connect(url, compression=None) as ws:
            await ws.send('{"type":"hello","protocol":2}')
            error = p.decode_server_message(await ws.recv())
            assert isinstance(error, p.ErrorMessage)
            assert (error.code, error.fatal) == ("unsupported_version", True)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1002


async def test_recv_raises_after_the_server_goes_away():
    async with running_peer() as url:
        client = await RecognitionClient.connect(url)
    # the peer shut down: the client's reader sees the close and recv() reports it, every time
    for _ in range(2):
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.recv(), 5)
    await client.close()
