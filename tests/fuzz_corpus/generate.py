"""Write the hand-made corpus of nasty inputs (run once; the files are committed).

Needs Pillow and OpenCV (`pip install pillow opencv-python-headless`): Pillow for CMYK and
progressive JPEGs and PNG, which OpenCV cannot all write. Each file's expected outcome is in
manifest.json: "ok" (must be served normally), "error:<code>" (must get that documented error), or
"any" (the server may serve or refuse it, but must answer it and survive). Invalid UTF-8 text is not
here: websockets itself refuses such text frames (close 1007) before the server sees them.
"""

from __future__ import annotations

import io
import json
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from vr_recognition.server import protocol as p  # noqa: E402


def jpeg(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def with_sof_size(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    sof = next(i for i in range(2, len(out) - 1) if out[i] == 0xFF and out[i + 1] in (0xC0, 0xC1, 0xC2))
    struct.pack_into(">HH", out, sof + 5, height, width)
    return bytes(out)


def frame(payload: bytes, width: int, height: int, fmt: p.ImageFormat = p.ImageFormat.JPEG) -> bytes:
    header = bytearray(
        p.encode_frame(p.Frame(1, 1, p.ImageFormat.RGB8, 1, 1, b"\x00\x00\x00"))[: p.HEADER_SIZE]
    )
    struct.pack_into("<BxHHxxI", header, 60, int(fmt), width, height, len(payload))
    return bytes(header) + payload


def main() -> None:
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), "RGB")
    red = Image.new("RGB", (160, 120), (255, 0, 0))
    base = jpeg(red, quality=90)
    cases: dict[str, tuple[bytes, str]] = {
        "progressive_jpeg.bin": (frame(jpeg(red, quality=85, progressive=True), 160, 120), "ok"),
        "cmyk_jpeg.bin": (frame(jpeg(red.convert("CMYK"), quality=90), 160, 120), "ok"),
        "grayscale_jpeg.bin": (frame(jpeg(red.convert("L"), quality=90), 160, 120), "ok"),
        "one_pixel_jpeg.bin": (frame(jpeg(Image.new("RGB", (1, 1), (255, 0, 0))), 1, 1), "ok"),
        "noise_jpeg_q5.bin": (frame(jpeg(rgb, quality=5), 160, 120), "ok"),
        "bomb_16k_declared_and_in_sof.bin": (
            frame(with_sof_size(base, 16000, 16000), 16000, 16000),
            "error:image_too_large",
        ),
        "bomb_8k_square_over_pixel_cap.bin": (
            frame(with_sof_size(base, 8000, 8000), 8000, 8000),
            "error:image_too_large",
        ),
        "bomb_hidden_in_sof.bin": (
            frame(with_sof_size(base, 65500, 65500), 160, 120),
            "error:image_too_large",  # protocol 1.1: the SOF's size is checked against the limits first
        ),
        "raw_16k_declared_tiny_payload.bin": (
            frame(bytes(30), 16384, 16384, p.ImageFormat.RGB8),
            "error:bad_dimensions",
        ),
        "png_declared_as_jpeg.bin": (frame(png(red), 160, 120), "error:corrupt_image"),
        "jpeg_without_scan.bin": (
            frame(base[: base.index(b"\xff\xda")] + b"\xff\xd9", 160, 120),
            "error:corrupt_image",
        ),
        "jpeg_cut_mid_scan.bin": (frame(base[: len(base) // 2], 160, 120), "any"),
        "jpeg_only_soi.bin": (frame(b"\xff\xd8", 160, 120), "error:corrupt_image"),
        "jpeg_zero_length_segment.bin": (
            frame(b"\xff\xd8\xff\xe0\x00\x00" + base[2:], 160, 120),
            "error:corrupt_image",
        ),
        "deeply_nested.txt": (
            ('{"type":"ping","id":1,"x":' + "[" * 20000 + "]" * 20000 + "}").encode(),
            "error:bad_json",
        ),
        "nested_objects.txt": (
            ('{"type":"configure",' + '"a":{' * 40 + "}" * 40 + "}").encode(),
            "error:bad_json",
        ),
        "number_overflow.txt": (b'{"type":"configure","top_k":1e400}', "error:invalid_message"),
        "huge_integer.txt": (b'{"type":"ping","id":' + b"9" * 4000 + b"}", "any"),
        "lone_surrogate.txt": (b'{"type":"ping","id":"\\ud800"}', "error:bad_json"),
        "control_too_large.txt": (
            json.dumps({"type": "hello", "protocol": 1, "client": {"name": "x" * 100_000}}).encode(),
            "error:message_too_large",
        ),
        "type_is_number.txt": (b'{"type": 7}', "error:invalid_message"),
        "empty_object.txt": (b"{}", "error:invalid_message"),
        "null.txt": (b"null", "error:bad_json"),
    }
    for old in HERE.glob("*.bin"):
        old.unlink()
    for old in HERE.glob("*.txt"):
        old.unlink()
    for name, (data, _) in cases.items():
        (HERE / name).write_bytes(data)
    manifest = {name: expected for name, (_, expected) in cases.items()}
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(cases)} corpus files")


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


if __name__ == "__main__":
    main()
