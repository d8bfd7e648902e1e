"""The golden vectors pin the wire format: decoding matches the expectation beside each file, and
encoding the decoded value gives back the very same bytes. The C# client's tests read these too."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from vr_recognition.server import protocol as p

VECTORS = Path(__file__).parent / "vectors"
GAZE_CROP_RECTS = VECTORS / "gaze_crop_rect.json"  # a list of geometry cases, not a message vector
SPECS = sorted(s for s in VECTORS.glob("*.json") if s != GAZE_CROP_RECTS)


def load(spec_path: Path) -> tuple[dict, bytes]:
    spec = json.loads(spec_path.read_text())
    suffix = ".bin" if spec["kind"] == "frame" else ".txt"
    return spec, spec_path.with_suffix(suffix).read_bytes()


def frame_as_spec(frame: p.Frame, header_len: int) -> dict:
    payload = bytes(frame.payload)
    return {
        "frame_id": frame.frame_id,
        "capture_time_us": frame.capture_time_us,
        "image_format": frame.image_format.wire_name,
        "width": frame.width,
        "height": frame.height,
        "header_len": header_len,
        "payload_len": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "pose": None if frame.pose is None else frame.pose.to_json(),
        "gaze": None if frame.gaze is None else list(frame.gaze),
        "rows_bottom_up": frame.rows_bottom_up,
    }


def test_vector_set_is_complete():
    kinds = [json.loads(s.read_text())["kind"] for s in SPECS]
    assert kinds.count("frame") >= 15
    assert kinds.count("client") >= 10
    assert kinds.count("server") >= 8
    codes = {json.loads(s.read_text()).get("error") for s in SPECS} - {None}
    frame_codes = {c.value for c in p.ErrorCode} & {
        "truncated_header", "bad_magic", "unsupported_version", "unknown_message_type", "bad_header",
        "length_mismatch", "empty_payload", "unsupported_format", "bad_dimensions",
    }  # fmt: skip
    assert frame_codes <= codes, "every frame-level error code has a golden vector"


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda s: s.stem)
def test_golden_vector(spec_path: Path):
    spec, data = load(spec_path)
    if spec["kind"] == "frame":
        if "error" in spec:
            with pytest.raises(p.ProtocolError) as info:
                p.decode_frame(data)
            assert info.value.code.value == spec["error"]
            assert info.value.frame_id == spec["frame_id"]
            return
        frame = p.decode_frame(data)
        header_len = int.from_bytes(data[6:8], "little")
        assert frame_as_spec(frame, header_len) == spec["expect"]
        if spec["encodes_back"]:
            assert p.encode_frame(frame) == data
        return

    decode = p.decode_client_message if spec["kind"] == "client" else p.decode_server_message
    encode = p.encode_client_message if spec["kind"] == "client" else p.encode_server_message
    if "error" in spec:
        with pytest.raises(p.ProtocolError) as info:
            decode(data)
        assert info.value.code.value == spec["error"]
        return
    message = decode(data)
    assert json.loads(encode(message)) == spec["expect"]
    if spec["encodes_back"]:
        assert encode(message).encode() == data
    if "negotiation" in spec:  # what a v1 server makes of this hello
        with pytest.raises(p.ProtocolError) as info:
            p.negotiate_version(message)
        assert info.value.code.value == spec["negotiation"]


def test_gaze_crop_rects():
    cases = json.loads(GAZE_CROP_RECTS.read_text())
    assert len(cases) >= 10
    for case in cases:
        rect = p.gaze_crop_rect(case["width"], case["height"], case["u"], case["v"], case["scale"])
        assert list(rect) == case["rect"], case
        left, top, side = rect
        assert 0 <= left <= case["width"] - side
        assert 0 <= top <= case["height"] - side
