"""Write the golden vectors: wire bytes plus, beside each, the decoding every client must produce.

Run `python tests/vectors/generate.py` only when the protocol really changes; the committed files are
the contract, and tests (Python here, C# in unity_client, C++ in unreal_client, JavaScript in
web_client) check them byte for byte. Each vector is `NAME.bin` (a binary frame) or `NAME.txt` (a
JSON text message) with `NAME.json` beside it:

- {"kind": "frame", "expect": {...}}: decodes to these fields; if "encodes_back" is true, encoding
  those fields gives exactly the .bin bytes;
- {"kind": "frame", "error": CODE, "frame_id": N|null}: decoding fails with that error code;
- {"kind": "client"|"server", "expect": {...}}: the text decodes to this message, shown with every
  default filled in; if "encodes_back" is true, encoding it gives exactly the .txt text;
- {"kind": "client"|"server", "error": CODE}: decoding fails with that error code.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from vr_recognition.server import protocol as p  # noqa: E402

# A real 16x8 baseline JPEG (a colour gradient, quality 90), stored here so generation needs no codec.
JPEG_16x8 = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb0043000302020302020303030304030304050805050404050a07"
    "0706080c0a0c0c0b0a0b0b0d0e12100d0e110e0b0b1016101113141515150c0f171816141812141514ffdb0043010304"
    "0405040509050509140d0b0d141414141414141414141414141414141414141414141414141414141414141414141414"
    "1414141414141414141414141414ffc00011080008001003012200021101031101ffc4001f0000010501010101010100"
    "000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d010203000411051221"
    "31410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a"
    "434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a9293949596979899"
    "9aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1"
    "f2f3f4f5f6f7f8f9faffc4001f0100030101010101010101010000000000000102030405060708090a0bffc400b51100"
    "020102040403040705040400010277000102031104052131061241510761711322328108144291a1b1c109233352f015"
    "6272d10a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a63646566676869"
    "6a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4"
    "c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110311003f00b5"
    "adfeca9f7bfd0fff001dae035bfd953ef7fa27fe3b4515f2be0f713e67fbafde763c6f1578c738fde7ef7bff005b9fff"
    "d9"
)


def write(name: str, data: bytes, spec: dict) -> None:
    suffix = ".bin" if spec["kind"] == "frame" else ".txt"
    (HERE / f"{name}{suffix}").write_bytes(data)
    (HERE / f"{name}.json").write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")


def frame_expect(frame: p.Frame, header_len: int = p.HEADER_SIZE) -> dict:
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


def good_frames() -> None:
    jpeg = p.Frame(
        frame_id=42,
        capture_time_us=1_234_567_890,
        image_format=p.ImageFormat.JPEG,
        width=16,
        height=8,
        payload=JPEG_16x8,
        pose=p.Pose((1.5, 1.625, -2.25), (0.5, 0.5, 0.5, 0.5)),
        gaze=(0.5, 0.375),
    )
    write(
        "frame_jpeg_pose_gaze",
        p.encode_frame(jpeg),
        {"kind": "frame", "encodes_back": True, "expect": frame_expect(jpeg)},
    )
    rgb = p.Frame(
        frame_id=0,
        capture_time_us=0,
        image_format=p.ImageFormat.RGB8,
        width=2,
        height=2,
        payload=bytes(range(12)),
    )
    write(
        "frame_rgb8_minimal",
        p.encode_frame(rgb),
        {"kind": "frame", "encodes_back": True, "expect": frame_expect(rgb)},
    )
    rgba = p.Frame(
        frame_id=4_294_967_295,
        capture_time_us=p.MAX_JSON_SAFE_INT,
        image_format=p.ImageFormat.RGBA8,
        width=3,
        height=1,
        payload=bytes([255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 128]),
        gaze=(1.0, 0.0),
        rows_bottom_up=True,
    )
    write(
        "frame_rgba8_bottom_up_max_ids",
        p.encode_frame(rgba),
        {"kind": "frame", "encodes_back": True, "expect": frame_expect(rgba)},
    )
    # The worked example of docs/protocol.md, byte for byte.
    example = p.Frame(
        frame_id=42,
        capture_time_us=1_234_567_890,
        image_format=p.ImageFormat.RGB8,
        width=2,
        height=1,
        payload=bytes.fromhex("ff000000ff00"),
        pose=p.Pose((1.5, 1.625, -2.25), (0.5, 0.5, 0.5, 0.5)),
        gaze=(0.5, 0.375),
    )
    write(
        "frame_doc_example",
        p.encode_frame(example),
        {"kind": "frame", "encodes_back": True, "expect": frame_expect(example)},
    )
    # A frame from a later minor revision: 8 more header bytes and an ignorable flag (bit 16).
    # A v1 decoder must skip the extra bytes and ignore the flag.
    base = bytearray(p.encode_frame(rgb))
    extra = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    struct.pack_into("<H", base, 6, p.HEADER_SIZE + len(extra))
    struct.pack_into("<I", base, 8, 1 << 16)
    extended = bytes(base[: p.HEADER_SIZE]) + extra + bytes(base[p.HEADER_SIZE :])
    write(
        "frame_extended_header",
        extended,
        {"kind": "frame", "encodes_back": False, "expect": frame_expect(rgb, p.HEADER_SIZE + 8)},
    )


def bad_frames() -> None:
    good = p.encode_frame(
        p.Frame(
            frame_id=7,
            capture_time_us=1000,
            image_format=p.ImageFormat.RGB8,
            width=2,
            height=1,
            payload=bytes(6),
        )
    )

    def patched(fmt: str, offset: int, *values: object, flags: int | None = None) -> bytes:
        data = bytearray(good)
        struct.pack_into(fmt, data, offset, *values)
        if flags is not None:
            struct.pack_into("<I", data, 8, flags)
        return bytes(data)

    cases = {
        "bad_truncated_3_bytes": (good[:3], "truncated_header", None),
        "bad_magic": (b"JFIF" + good[4:], "bad_magic", None),
        "bad_truncated_header": (good[:40], "truncated_header", None),
        "bad_version_2": (patched("<B", 4, 2), "unsupported_version", None),
        "bad_message_type": (patched("<B", 5, 9), "unknown_message_type", None),
        "bad_header_len_short": (patched("<H", 6, 60), "bad_header", None),
        "bad_header_len_past_end": (patched("<H", 6, 200), "truncated_header", None),
        "bad_capture_time_over_2_53": (patched("<Q", 16, 2**53), "bad_header", 7),
        "bad_length_mismatch": (good + b"\x00", "length_mismatch", 7),
        "bad_empty_payload": (patched("<I", 68, 0)[: p.HEADER_SIZE], "empty_payload", 7),
        "bad_unknown_flag": (patched("<I", 8, 1 << 5), "bad_header", 7),
        "bad_image_format": (patched("<B", 60, 9), "unsupported_format", 7),
        "bad_zero_width": (patched("<H", 62, 0), "bad_dimensions", 7),
        "bad_raw_size": (patched("<H", 62, 3), "bad_dimensions", 7),
        "bad_pose_nan": (patched("<f", 24, float("nan"), flags=1), "bad_header", 7),
        "bad_gaze_outside": (patched("<2f", 52, 1.5, 0.5, flags=2), "bad_header", 7),
    }
    for name, (data, code, frame_id) in cases.items():
        write(name, data, {"kind": "frame", "error": code, "frame_id": frame_id})


def text_vectors() -> None:
    model = p.ModelInfo(
        "demo-resnet18", "2026-11-22T10:00:00Z", ("box", "panda", "teapot"), 224, 224, "CPUExecutionProvider"
    )
    session = p.EffectiveSettings(top_k=2, budget_ms=11.1, fps=90.0, smoothing_ema_alpha=0.5)
    messages: dict[str, tuple[str, p.ClientMessage | p.ServerMessage]] = {
        "client_hello": (
            "client",
            p.ClientHello(
                protocol=1,
                client_name="unity-client",
                client_version="0.1.0",
                settings=p.StreamSettings(top_k=2, budget_ms=11.1, fps=90.0, smoothing_ema_alpha=0.5),
            ),
        ),
        "client_configure": ("client", p.Configure(p.StreamSettings(budget_ms=8.3, gaze_crop_scale=0.5))),
        # v1.1: a field sent as null goes back to the server's default (smoothing and gaze crop: off)
        "client_configure_null": (
            "client",
            p.Configure(p.StreamSettings(top_k=3, reset=frozenset({"smoothing", "gaze_crop"}))),
        ),
        # v1.1: any top_k >= 1 is valid; the server clamps it to the classes and limits.max_top_k
        "client_hello_top_k_large": (
            "client",
            p.ClientHello(
                protocol=1, client_name="t", client_version="1", settings=p.StreamSettings(top_k=100000)
            ),
        ),
        "client_ping": ("client", p.Ping(3, 1_234_567)),
        "server_hello": (
            "server",
            p.ServerHello(1, "vr-serve", "0.1.0", model, session, p.Limits()),
        ),
        "server_result_ok": (
            "server",
            p.Result(
                frame_id=42,
                capture_time_us=1_234_567_890,
                status=p.Status.OK,
                top_k=(p.Prediction("teapot", 2, 0.912345), p.Prediction("box", 0, 0.05)),
                timings_ms={
                    "receive": 0.05,
                    "decode": 1.2,
                    "queue": 0.3,
                    "infer": 7.5,
                    "post": 0.1,
                    "total": 9.15,
                },
                pose=p.Pose((1.5, 1.625, -2.25), (0.5, 0.5, 0.5, 0.5)),
                gaze=(0.5, 0.375),
                model_version="2026-11-22T10:00:00Z",
            ),
        ),
        "server_result_dropped_stale": (
            "server",
            p.Result(
                frame_id=41,
                capture_time_us=1_234_556_779,
                status=p.Status.DROPPED_STALE,
                timings_ms={"receive": 0.04, "total": 3.2},
                model_version="2026-11-22T10:00:00Z",
            ),
        ),
        "server_result_error": (
            "server",
            p.error_for(
                p.ProtocolError(
                    p.ErrorCode.CORRUPT_IMAGE,
                    "JPEG data could not be decoded",
                    frame_id=43,
                    capture_time_us=1_234_578_901,
                )
            ),
        ),
        "server_error": ("server", p.ErrorMessage("bad_magic", "magic is b'JFIF', expected b'VRFR'")),
        "server_error_fatal": (
            "server",
            p.ErrorMessage("unsupported_version", "client speaks 2..2, server speaks [1]", fatal=True),
        ),
        "server_pong": ("server", p.Pong(3, 1_234_567, 99_000_000)),
        "server_configured": (
            "server",
            p.Configured(p.EffectiveSettings(top_k=2, budget_ms=8.3, gaze_crop_scale=0.5)),
        ),
        "server_model_changed": ("server", p.ModelChanged(model)),
    }
    for name, (kind, message) in messages.items():
        encode = p.encode_client_message if kind == "client" else p.encode_server_message
        text = encode(message)
        write(name, text.encode(), {"kind": kind, "encodes_back": True, "expect": json.loads(text)})

    # Forward compatibility: a newer peer's unknown fields are ignored.
    future_result = json.loads(encode_result_ok := p.encode_server_message(messages["server_result_ok"][1]))
    future_result["saliency"] = {"x": 0.1}
    future_result["timings_ms"]["gpu_copy"] = 0.2
    expect = json.loads(encode_result_ok)
    expect["timings_ms"]["gpu_copy"] = 0.2
    write(
        "server_result_future_fields",
        json.dumps(future_result).encode(),
        {"kind": "server", "encodes_back": False, "expect": expect},
    )
    minimal_hello = {"type": "hello", "protocol": 2, "min_protocol": 1, "new_option": True}
    write(
        "client_hello_v2_minimal",
        json.dumps(minimal_hello).encode(),
        {
            "kind": "client",
            "encodes_back": False,
            "expect": {
                "type": "hello",
                "protocol": 2,
                "min_protocol": 1,
                "client": {"name": "unknown", "version": ""},
            },
        },
    )

    # v1.1: min_protocol above protocol is well-formed; no version satisfies it, so negotiation fails
    # (the server answers a fatal unsupported_version and closes with 1002).
    write(
        "client_hello_no_common_version",
        b'{"type":"hello","protocol":1,"min_protocol":2}',
        {
            "kind": "client",
            "encodes_back": False,
            "expect": {
                "type": "hello",
                "protocol": 1,
                "min_protocol": 2,
                "client": {"name": "unknown", "version": ""},
            },
            "negotiation": "unsupported_version",
        },
    )

    bad_client = {
        "bad_json_syntax": (b'{"type": "hello", ', "bad_json"),
        "bad_json_nan": (b'{"type": "hello", "protocol": 1, "budget_ms": NaN}', "bad_json"),
        "bad_json_not_object": (b'["hello"]', "bad_json"),
        "bad_json_deep": (b'{"type":"hello","x":' + b"[" * 40 + b"]" * 40 + b"}", "bad_json"),
        "bad_json_invalid_utf8": (b'{"type": "hello\xff"}', "bad_json"),
        "bad_client_no_type": (b'{"protocol": 1}', "invalid_message"),
        "bad_client_unknown_type": (b'{"type": "subscribe"}', "unknown_message_type"),
        "bad_hello_no_protocol": (b'{"type": "hello"}', "invalid_message"),
        "bad_hello_top_k_zero": (b'{"type": "hello", "protocol": 1, "top_k": 0}', "invalid_message"),
        "bad_hello_top_k_float": (b'{"type": "hello", "protocol": 1, "top_k": 2.5}', "invalid_message"),
        "bad_hello_budget_negative": (b'{"type":"hello","protocol":1,"budget_ms":-1}', "invalid_message"),
        "bad_hello_smoothing": (
            b'{"type":"hello","protocol":1,"smoothing":{"ema_alpha":0}}',
            "invalid_message",
        ),
        "bad_ping_bool_id": (b'{"type": "ping", "id": true}', "invalid_message"),
        "bad_json_lone_surrogate": (b'{"type": "ping", "id": "\\ud800"}', "bad_json"),
    }
    for name, (data, code) in bad_client.items():
        write(name, data, {"kind": "client", "error": code})


def gaze_crop_rects() -> None:
    """gaze_crop_rect.json: a list of cases, {"width", "height", "u", "v", "scale", "rect": [left, top,
    side]}, the crop in the frame's own pixel grid (docs/protocol.md 3.1). Halves round up."""
    cases = [
        (1280, 720, 0.5, 0.5, 0.5),  # centred
        (1280, 720, 0.0, 0.0, 0.5),  # top-left corner: shifted inside
        (1280, 720, 1.0, 1.0, 0.5),  # bottom-right corner
        (1280, 720, 0.25, 0.75, 0.3),  # side 216
        (101, 51, 0.5, 0.5, 0.5),  # side 25.5 -> 26 (half up), left 50.5 - 13 = 37.5 -> 38
        (100, 100, 0.5, 0.5, 0.25),  # left 50 - 12.5 = 37.5 -> 38 (half up; banker's rounding gives 38 too)
        (100, 100, 0.505, 0.5, 0.25),  # 50.5 - 12.5 = 38.0
        (10, 10, 0.45, 0.5, 0.5),  # left 4.5 - 2.5 = 2.0
        (10, 10, 0.55, 0.35, 0.5),  # left 5.5 - 2.5 = 3.0, top 3.5 - 2.5 = 1.0
        (3, 7, 0.5, 0.5, 0.1),  # side 0.3 -> at least 1
        (8192, 1, 0.3, 0.9, 1.0),  # a thin frame: side 1
        (640, 480, 0.7, 0.2, 1.0),  # the whole shorter side
        (1920, 1080, 0.123, 0.877, 0.42),
    ]
    out = [
        {"width": w, "height": h, "u": u, "v": v, "scale": s, "rect": list(p.gaze_crop_rect(w, h, u, v, s))}
        for w, h, u, v, s in cases
    ]
    (HERE / "gaze_crop_rect.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    for old in [*HERE.glob("*.bin"), *HERE.glob("*.txt"), *HERE.glob("*.json")]:
        old.unlink()
    good_frames()
    bad_frames()
    text_vectors()
    gaze_crop_rects()
    print(f"wrote {len(list(HERE.glob('*.json')))} vectors to {HERE.name}/")
