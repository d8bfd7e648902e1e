"""Every kind of bad input: the sender gets a typed error, the server survives, a healthy stream
alongside is unaffected, and no stack trace reaches any client.

What the codec makes of bad bytes needs no server: header and JSON rules are pinned by
tests/test_protocol_vectors.py and tests/test_protocol_codec.py, and bad image content is checked
here by calling preprocessing directly. The live server gets one case of each error family, for its
own reaction (the stream goes on, the failure is counted), and the rules that are the server's: hello
first, timeouts, version refusal, message size, token, origin, stream slots."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections import Counter
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.onnx_models import colour_contract, write_colour_model
from tests.server_helpers import metric_value, serving, solid_jpeg
from vr_recognition.server import protocol as p
from vr_recognition.server.client import RecognitionClient, ServerRefused
from vr_recognition.server.preprocess import preprocess_frame

GOOD_JPEG = solid_jpeg("red", 64, 48)
PATIENT = p.StreamSettings(budget_ms=10_000)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_colour_model(tmp_path_factory.mktemp("models") / "colour.onnx")


def frame(
    payload: bytes = GOOD_JPEG, width: int = 64, height: int = 48, fmt=p.ImageFormat.JPEG, fid=5
) -> bytes:
    return p.encode_frame(p.Frame(fid, 77, fmt, width, height, payload))


def jpeg_with_size(width: int, height: int) -> bytes:
    """A real JPEG whose SOF header claims another size: a decompression bomb when large."""
    data = bytearray(GOOD_JPEG)
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def without_scan(jpeg: bytes) -> bytes:
    """Headers intact (SOF readable), entropy-coded data gone: undecodable."""
    sos = jpeg.index(b"\xff\xda")
    return jpeg[:sos] + b"\xff\xd9"


# Frames whose header is fine but whose image is not: refused by preprocessing, not by the codec.
BAD_IMAGES = {
    "not a JPEG at all": (frame(b"\x00garbage" * 50), "corrupt_image"),
    "JPEG without image data": (frame(without_scan(GOOD_JPEG)), "corrupt_image"),
    "JPEG size differs from header": (frame(jpeg_with_size(640, 480)), "bad_dimensions"),
    "decompression bomb (16k x 16k)": (frame(jpeg_with_size(16000, 16000), 16000, 16000), "image_too_large"),
    "decompression bomb within max side": (frame(jpeg_with_size(8000, 8000), 8000, 8000), "image_too_large"),
    "declared size over the limit": (frame(GOOD_JPEG, 9000, 48), "image_too_large"),
}

# One case per error family for the live server (the codec's answer to the others is tested without it).
LIVE_BINARY = {
    # header unreadable: an error message without a frame id
    "wrong magic": (b"RIFF" + frame()[4:], "bad_magic", None),
    # header read, a frame rule broken: an error result for that frame
    "length mismatch": (frame() + b"extra", "length_mismatch", 5),
    # image content, found while the server decodes: a decoder failure and a size guard
    "JPEG without image data": (BAD_IMAGES["JPEG without image data"][0], "corrupt_image", 5),
    "decompression bomb (16k x 16k)": (BAD_IMAGES["decompression bomb (16k x 16k)"][0], "image_too_large", 5),
}
LIVE_TEXT = {
    "malformed JSON": ('{"type": "configure", ', "bad_json"),
    # over the server's own control-message limit
    "huge JSON": (json.dumps({"type": "ping", "id": 1, "pad": "x" * 70_000}), "message_too_large"),
    # well-formed JSON, not a valid message: mid-stream, a configure with a bad field
    "invalid field": ('{"type": "configure", "top_k": "all"}', "invalid_message"),
    # not parsing at all: a rule of the stream's state
    "second hello": ('{"type": "hello", "protocol": 1}', "duplicate_hello"),
}


@pytest.mark.parametrize("name", BAD_IMAGES)
def test_bad_image_content_is_refused_by_preprocessing(name):
    """What the server's decode step makes of each image, called directly (tests/test_preprocess.py
    covers good images only); the live test below sends two of them for the server's own answer."""
    data, code = BAD_IMAGES[name]
    decoded = p.decode_frame(data)  # the header itself is valid
    with pytest.raises(p.ProtocolError) as info:
        preprocess_frame(decoded, colour_contract(), p.Limits())
    assert info.value.code.value == code


async def expect_healthy(client: RecognitionClient) -> None:
    await client.send_frame(GOOD_JPEG, width=64, height=48)
    result = await client.recv(timeout=10)
    assert isinstance(result, p.Result)
    assert result.status is p.Status.OK
    assert result.top_k[0].label == "red"


def assert_no_trace(message) -> None:
    text = p.encode_server_message(message)
    assert "Traceback" not in text
    assert 'File "' not in text
    assert len(text) < 2000


async def test_every_bad_message_gets_its_typed_error_and_nobody_else_notices(model, caplog):
    caplog.set_level(logging.WARNING)
    async with (
        serving(model) as server,
        await RecognitionClient.connect(server.url, settings=PATIENT) as victim,
        await RecognitionClient.connect(server.url, settings=PATIENT) as bystander,
    ):
        for name, (data, code, frame_id) in LIVE_BINARY.items():
            await victim.send_raw(data)
            reply = await victim.recv(timeout=10)
            assert_no_trace(reply)
            if frame_id is None:
                assert isinstance(reply, p.ErrorMessage), name
                assert (reply.code, reply.fatal) == (code, False), name
            else:
                assert isinstance(reply, p.Result), name
                assert (reply.status, reply.error.code, reply.frame_id) == (p.Status.ERROR, code, 5), name
            await expect_healthy(victim)  # the offender's own stream goes on
            await expect_healthy(bystander)
        for name, (text, code) in LIVE_TEXT.items():
            await victim.send_raw(text)
            reply = await victim.recv(timeout=10)
            assert_no_trace(reply)
            assert isinstance(reply, p.ErrorMessage), name
            assert (reply.code, reply.fatal) == (code, False), name
            await expect_healthy(victim)
            await expect_healthy(bystander)
    sent = Counter(case[1] for case in (*LIVE_BINARY.values(), *LIVE_TEXT.values()))
    failures = {c: metric_value(server, "vr_inference_request_failure_total", code=c) for c in sent}
    assert failures == dict(sent)  # each bad message counted once, under its code
    assert not [r for r in caplog.records if r.exc_info], "a bad input reached the server as an exception"


async def test_frames_before_hello_are_refused_then_hello_works(model):
    async with serving(model) as server, connect(server.url, compression=None) as ws:
        await ws.send(frame())
        reply = p.decode_server_message(await ws.recv())
        assert isinstance(reply, p.ErrorMessage)
        assert reply.code == "hello_required"
        await ws.send('{"type":"ping","id":1}')
        assert p.decode_server_message(await ws.recv()).code == "hello_required"
        await ws.send(p.encode_client_message(p.ClientHello(settings=PATIENT)))
        assert isinstance(p.decode_server_message(await ws.recv()), p.ServerHello)
        await ws.send(frame())
        result = p.decode_server_message(await ws.recv())
        assert result.status is p.Status.OK


async def test_silent_connection_is_closed_after_the_hello_timeout(model):
    async with serving(model, hello_timeout_s=0.3) as server, connect(server.url, compression=None) as ws:
        reply = p.decode_server_message(await asyncio.wait_for(ws.recv(), 5))
        assert (reply.code, reply.fatal) == ("hello_required", True)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == p.CloseCode.POLICY_VIOLATION


async def test_unsupported_protocol_version_is_refused_with_1002(model):
    async with serving(model) as server, connect(server.url, compression=None) as ws:
        await ws.send('{"type":"hello","protocol":3,"min_protocol":2}')
        reply = p.decode_server_message(await ws.recv())
        assert (reply.code, reply.fatal) == ("unsupported_version", True)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == p.CloseCode.PROTOCOL_ERROR


async def test_oversized_message_closes_only_that_connection_with_1009(model):
    limits = p.Limits(max_message_bytes=256 * 1024)
    async with (
        serving(model, limits=limits) as server,
        await RecognitionClient.connect(server.url, settings=PATIENT) as victim,
        await RecognitionClient.connect(server.url, settings=PATIENT) as bystander,
    ):
        assert victim.server_hello.limits.max_message_bytes == 256 * 1024
        await victim.send_raw(frame(bytes(512 * 1024 * 3), 512, 1024, p.ImageFormat.RGB8))
        with pytest.raises(ConnectionClosed) as closed:
            await victim.recv(timeout=10)
        assert victim.close_code == 1009
        assert closed.value.rcvd.reason == "message_too_large"  # v1.1: the reason is the error code
        await expect_healthy(bystander)


async def test_min_protocol_above_protocol_is_a_failed_negotiation(model):
    async with serving(model) as server, connect(server.url, compression=None) as ws:
        await ws.send('{"type":"hello","protocol":1,"min_protocol":2}')
        reply = p.decode_server_message(await ws.recv())
        assert (reply.code, reply.fatal) == ("unsupported_version", True)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1002, "unsupported_version")


async def test_text_that_is_not_utf8_closes_with_1007_bad_json(model):
    async with (
        serving(model) as server,
        connect(server.url, compression=None) as ws,
        await RecognitionClient.connect(server.url, settings=PATIENT) as bystander,
    ):
        await ws.send(p.encode_client_message(p.ClientHello()))
        await ws.recv()
        # A text frame with bytes that are not UTF-8: RFC 6455 8.1 says fail the connection.
        ws.protocol.send_text(b'{"type":"ping","id":"\xff"}')
        ws.send_data()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1007, "bad_json")
        await expect_healthy(bystander)


async def test_a_hello_that_finds_the_streams_taken_is_closed_with_4013(model):
    """Both connections pass the upgrade while a slot is free; the second hello finds it taken."""
    async with (
        serving(model, max_streams=1) as server,
        connect(server.url, compression=None) as first,
        connect(server.url, compression=None) as second,
    ):
        await first.send(p.encode_client_message(p.ClientHello(settings=PATIENT)))
        assert isinstance(p.decode_server_message(await first.recv()), p.ServerHello)
        await second.send(p.encode_client_message(p.ClientHello()))
        reply = p.decode_server_message(await second.recv())
        assert (reply.code, reply.fatal) == ("too_many_streams", True)
        with pytest.raises(ConnectionClosed) as closed:
            await second.recv()
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4013, "too_many_streams")


async def test_a_client_that_stops_reading_misses_its_pong_and_gets_1008_slow_consumer(model):
    async with serving(model, keepalive_s=0.3) as server, connect(server.url, compression=None) as ws:
        await ws.send(p.encode_client_message(p.ClientHello()))
        await ws.recv()
        ws.transport.pause_reading()  # the server's pings wait unread: no pong goes back
        await asyncio.sleep(1.0)  # past ping interval + ping timeout (0.3 s each)
        ws.transport.resume_reading()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "slow_consumer")


async def test_token_is_required_at_the_handshake(model):
    async with serving(model, token="let-me-in") as server:
        for token in (None, "wrong", "let-me-in-please", ""):
            with pytest.raises(ServerRefused) as refused:
                await RecognitionClient.connect(server.url, token=token)
            assert (refused.value.code, refused.value.http_status) == ("unauthorized", 401)
        async with await RecognitionClient.connect(server.url, token="let-me-in", settings=PATIENT) as client:
            await expect_healthy(client)
        async with await RecognitionClient.connect(
            server.url + "/?token=let-me-in", settings=PATIENT
        ) as browser:
            await expect_healthy(browser)
    assert metric_value(server, "vr_connections_refused_total", code="unauthorized") == 4


async def test_disallowed_origin_is_refused(model):
    async with serving(model, allowed_origins=("https://app.example",)) as server:
        with pytest.raises(ServerRefused) as refused:
            await RecognitionClient.connect(server.url, origin="https://evil.example")
        assert (refused.value.code, refused.value.http_status) == ("forbidden_origin", 403)
        async with await RecognitionClient.connect(server.url, origin="https://app.example") as browser:
            assert browser.model.classes
        async with await RecognitionClient.connect(server.url) as native:  # no Origin: not a browser
            assert native.model.classes


async def test_too_many_streams_are_refused_and_slots_come_back(model):
    async with serving(model, max_streams=2) as server:
        first = await RecognitionClient.connect(server.url)
        second = await RecognitionClient.connect(server.url)
        with pytest.raises(ServerRefused) as refused:
            await RecognitionClient.connect(server.url)
        assert (refused.value.code, refused.value.http_status) == ("too_many_streams", 503)
        await first.close()
        for _ in range(50):  # the server notices the close within a few event-loop turns
            if metric_value(server, "vr_active_streams") < 2:
                break
            await asyncio.sleep(0.02)
        async with await RecognitionClient.connect(server.url, settings=PATIENT) as third:
            await expect_healthy(third)
        await second.close()
