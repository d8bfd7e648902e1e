"""Codec properties: round trips for every valid frame and message, and every malformed input is
rejected with a ProtocolError (never another exception), whatever the bytes."""

from __future__ import annotations

import contextlib
import json
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vr_recognition.server import protocol as p

f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
unit = st.floats(min_value=0.0, max_value=1.0, width=32)


@st.composite
def frames(draw) -> p.Frame:
    image_format = draw(st.sampled_from(list(p.ImageFormat)))
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    channels = image_format.channels
    size = width * height * channels if channels else draw(st.integers(1, 2048))
    return p.Frame(
        frame_id=draw(st.integers(0, p.MAX_U32)),
        capture_time_us=draw(st.integers(0, p.MAX_JSON_SAFE_INT)),
        image_format=image_format,
        width=width,
        height=height,
        payload=draw(st.binary(min_size=size, max_size=size)),
        pose=draw(st.none() | st.builds(p.Pose, st.tuples(f32, f32, f32), st.tuples(f32, f32, f32, f32))),
        gaze=draw(st.none() | st.tuples(unit, unit)),
        rows_bottom_up=draw(st.booleans()),
    )


@given(frames())
def test_frame_round_trip(frame: p.Frame):
    data = p.encode_frame(frame)
    assert len(data) == p.HEADER_SIZE + len(frame.payload)
    decoded = p.decode_frame(data)
    assert decoded == frame
    assert p.encode_frame(decoded) == data


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.data())
def test_truncation_at_every_offset_is_rejected(frame: p.Frame, data):
    encoded = p.encode_frame(frame)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(p.ProtocolError) as info:
        p.decode_frame(encoded[:cut])
    expected = {p.ErrorCode.TRUNCATED_HEADER} if cut < p.HEADER_SIZE else {p.ErrorCode.LENGTH_MISMATCH}
    if cut == p.HEADER_SIZE:
        expected = {p.ErrorCode.LENGTH_MISMATCH}
    assert info.value.code in expected


def test_every_header_truncation_of_a_real_frame():
    encoded = p.encode_frame(
        p.Frame(1, 2, p.ImageFormat.RGB8, 1, 1, b"abc", pose=p.Pose((0, 0, 0), (0, 0, 0, 1)), gaze=(0.5, 0.5))
    )
    for cut in range(len(encoded)):
        with pytest.raises(p.ProtocolError) as info:
            p.decode_frame(encoded[:cut])
        if cut < 4:
            assert info.value.code is p.ErrorCode.TRUNCATED_HEADER
        elif cut < p.HEADER_SIZE:
            assert info.value.code is p.ErrorCode.TRUNCATED_HEADER
            assert info.value.frame_id is None
        else:
            assert info.value.code is p.ErrorCode.LENGTH_MISMATCH
            assert info.value.frame_id == 1


@given(frames(), st.data())
def test_bit_flips_decode_or_raise_protocol_error(frame: p.Frame, data):
    encoded = bytearray(p.encode_frame(frame))
    for _ in range(data.draw(st.integers(1, 4))):
        bit = data.draw(st.integers(0, len(encoded) * 8 - 1))
        encoded[bit // 8] ^= 1 << (bit % 8)
    try:
        decoded = p.decode_frame(bytes(encoded))
    except p.ProtocolError as exc:
        assert exc.code in set(p.ErrorCode)
        return
    # Whatever decodes is internally consistent.
    assert len(decoded.payload) == len(encoded) - int.from_bytes(encoded[6:8], "little")
    if decoded.image_format.channels:
        assert len(decoded.payload) == decoded.width * decoded.height * decoded.image_format.channels
    if decoded.pose is not None:
        assert all(math.isfinite(v) for v in (*decoded.pose.position, *decoded.pose.rotation))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_other_exceptions(data: bytes):
    with contextlib.suppress(p.ProtocolError):
        p.decode_frame(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_after_a_valid_prefix(tail: bytes):
    with_magic = p.MAGIC + bytes([1, 1]) + tail
    with contextlib.suppress(p.ProtocolError):
        p.decode_frame(with_magic)


def test_header_is_72_bytes_little_endian():
    data = p.encode_frame(p.Frame(0x01020304, 5, p.ImageFormat.JPEG, 640, 480, b"\xff\xd8"))
    assert p.HEADER_SIZE == 72
    assert data[:4] == b"VRFR"
    assert data[4] == 1
    assert data[5] == 1
    assert struct.unpack_from("<H", data, 6)[0] == 72
    assert data[12:16] == bytes([4, 3, 2, 1])
    assert struct.unpack_from("<HH", data, 62) == (640, 480)
    assert struct.unpack_from("<I", data, 68)[0] == 2


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (p.Frame(2**32, 0, p.ImageFormat.JPEG, 1, 1, b"x"), "out of range"),
        (p.Frame(0, 0, p.ImageFormat.JPEG, 70000, 1, b"x"), "out of range"),
        (p.Frame(0, 2**53, p.ImageFormat.JPEG, 1, 1, b"x"), r"2\*\*53"),
        (p.Frame(0, 0, p.ImageFormat.RGB8, 2, 2, b"x"), "needs 12 bytes"),
        (p.Frame(0, 0, p.ImageFormat.JPEG, 1, 1, b""), "no image bytes"),
        (p.Frame(0, 0, p.ImageFormat.JPEG, 1, 1, b"x", gaze=(1.5, 0)), "outside"),
    ],
)
def test_encoder_refuses_what_a_decoder_would_reject(frame, message):
    with pytest.raises(ValueError, match=message):
        p.encode_frame(frame)


# --- JSON control messages ---------------------------------------------------------------------

settings_strategy = st.builds(
    p.StreamSettings,
    top_k=st.none() | st.integers(1, 1000),
    budget_ms=st.none() | st.floats(0.01, 60_000),
    fps=st.none() | st.floats(0.5, 1000),
    smoothing_ema_alpha=st.none() | st.floats(0.001, 1.0),
    gaze_crop_scale=st.none() | st.floats(0.001, 1.0),
)
client_messages = st.one_of(
    st.builds(
        p.ClientHello,
        protocol=st.integers(1, 255),
        min_protocol=st.none(),
        client_name=st.text(max_size=50),
        client_version=st.text(max_size=20),
        settings=settings_strategy,
    ),
    st.builds(p.Configure, settings_strategy),
    st.builds(
        p.Ping, st.integers(0, 2**53 - 1) | st.text(max_size=64), st.none() | st.integers(0, 2**53 - 1)
    ),
)


@given(client_messages)
def test_client_message_round_trip(message):
    assert p.decode_client_message(p.encode_client_message(message)) == message


@given(st.text(max_size=300))
def test_arbitrary_text_is_a_client_message_or_a_protocol_error(text: str):
    with contextlib.suppress(p.ProtocolError):
        p.decode_client_message(text)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children),
        max_leaves=30,
    )
)
def test_arbitrary_json_under_a_hello_type(value):
    obj = {"type": "hello", "protocol": 1}
    if isinstance(value, dict):
        obj.update(value)
    else:
        obj["top_k"] = value
    try:
        p.decode_client_message(json.dumps(obj))
    except p.ProtocolError as exc:
        assert exc.code in {
            p.ErrorCode.INVALID_MESSAGE,
            p.ErrorCode.BAD_JSON,
            p.ErrorCode.UNKNOWN_MESSAGE_TYPE,
        }


def test_control_message_size_cap():
    big = json.dumps({"type": "hello", "protocol": 1, "pad": "x" * p.DEFAULT_MAX_CONTROL_BYTES})
    with pytest.raises(p.ProtocolError) as info:
        p.decode_client_message(big)
    assert info.value.code is p.ErrorCode.MESSAGE_TOO_LARGE


def test_extremely_deep_json_is_bad_json_not_recursion_error():
    text = '{"type":"hello","x":' + "[" * 50_000 + "]" * 50_000 + "}"
    with pytest.raises(p.ProtocolError) as info:
        p.decode_client_message(text, max_bytes=1_000_000)
    assert info.value.code is p.ErrorCode.BAD_JSON


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        ((1, None), (1,), 1),
        ((2, 1), (1,), 1),  # v2 client that also speaks v1, v1 server: v1
        ((2, None), (1,), None),  # v2-only client, v1 server: refused
        ((1, None), (1, 2), 1),  # v1 client, v2 server: v1
        ((3, 1), (1, 2), 2),
    ],
)
def test_version_negotiation(client, server, expected):
    hello = p.ClientHello(protocol=client[0], min_protocol=client[1])
    if expected is None:
        with pytest.raises(p.ProtocolError) as info:
            p.negotiate_version(hello, server)
        assert info.value.code is p.ErrorCode.UNSUPPORTED_VERSION
    else:
        assert p.negotiate_version(hello, server) == expected


result_strategy = st.builds(
    p.Result,
    frame_id=st.integers(0, p.MAX_U32),
    capture_time_us=st.integers(0, p.MAX_JSON_SAFE_INT),
    status=st.sampled_from(list(p.Status)),
    top_k=st.lists(
        st.builds(
            p.Prediction,
            st.text(max_size=20),
            st.integers(0, 1000),
            st.floats(0, 1).map(lambda v: round(v, 6)),
        ),
        max_size=5,
    ).map(tuple),
    timings_ms=st.dictionaries(
        st.sampled_from(p.TIMING_STAGES), st.floats(0, 1e4).map(lambda v: round(v, 3))
    ),
    pose=st.none() | st.builds(p.Pose, st.tuples(f32, f32, f32), st.tuples(f32, f32, f32, f32)),
    gaze=st.none() | st.tuples(unit, unit),
    model_version=st.text(max_size=30),
    error=st.none()
    | st.builds(p.ErrorInfo, st.sampled_from([c.value for c in p.ErrorCode]), st.text(max_size=50)),
)


@given(result_strategy)
def test_result_round_trip(result: p.Result):
    assert p.decode_server_message(p.encode_server_message(result)) == result


def test_error_for_uses_a_result_when_the_frame_id_is_known():
    known = p.error_for(p.ProtocolError(p.ErrorCode.CORRUPT_IMAGE, "bad", frame_id=3, capture_time_us=9))
    assert isinstance(known, p.Result)
    assert (known.frame_id, known.status, known.error.code) == (3, p.Status.ERROR, "corrupt_image")
    unknown = p.error_for(p.ProtocolError(p.ErrorCode.BAD_MAGIC, "bad"))
    assert isinstance(unknown, p.ErrorMessage)
    assert unknown.frame_id is None


def test_unknown_error_codes_from_newer_servers_still_decode():
    text = '{"type":"error","code":"quota_exceeded","message":"later version","frame_id":null,"fatal":false}'
    message = p.decode_server_message(text)
    assert isinstance(message, p.ErrorMessage)
    assert message.code == "quota_exceeded"


@pytest.mark.parametrize("top_k", ["2", '"cat"', '{"label":"cat"}', "true"])
def test_a_result_whose_top_k_is_not_an_array_is_a_protocol_error(top_k):
    # Found by the coverage-guided fuzz test: a duplicate "top_k" key whose last value was an int
    # escaped as TypeError.
    result = p.Result(frame_id=1, capture_time_us=2, status=p.Status.OK, top_k=(p.Prediction("cat", 0, 0.9),))
    obj = json.loads(p.encode_server_message(result))
    obj["top_k"] = "@"
    template = json.dumps(obj)
    with pytest.raises(p.ProtocolError, match="top_k"):
        p.decode_server_message(template.replace('"@"', top_k))
    assert p.decode_server_message(template.replace('"@"', "null")).top_k == ()


BEYOND_FLOAT = "1" + "0" * 400  # a valid JSON integer that float() cannot hold (OverflowError)


@pytest.mark.parametrize(
    "fields",
    [
        '"timings_ms":{"infer":%s}',
        '"top_k":[{"label":"a","index":0,"score":%s}]',
        '"gaze":[%s,0]',
        '"pose":{"position":[%s,0,0],"rotation":[0,0,0,1]}',
    ],
)
def test_numbers_beyond_float_range_are_protocol_errors(fields):
    text = '{"type":"result","frame_id":1,"capture_time_us":2,"status":"ok",' + fields % BEYOND_FLOAT + "}"
    with pytest.raises(p.ProtocolError):
        p.decode_server_message(text)
    assert isinstance(p.decode_server_message(text.replace(BEYOND_FLOAT, "1e300")), p.Result)
