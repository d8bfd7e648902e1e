"""Image operations shared by vr-serve, train-vr, vr-sim and vr-bench: one implementation of each.

Serving, training, the simulator and the benchmark decode, encode, resize and blur with these
functions, so they cannot drift apart (a training crop and a served crop are made the same way).
server.preprocess builds the model input from them; this module knows nothing about models.

Decoding is guarded against decompression bombs: a JPEG's dimensions are read from its SOF header
and checked against limits before a single pixel is decoded. Large JPEGs are decoded at 1/2, 1/4
or 1/8 scale by libjpeg itself (DCT scaling) when the caller needs far fewer pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from vr_recognition.server.protocol import ErrorCode, Limits, ProtocolError

# Formats OpenCV reads in every build we ship (opencv-python-headless); compared lower-cased.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# Limits for image files read from disk (datasets, rendered sessions), where the wire's limits would
# reject ordinary camera photos: the largest phone sensors write 16320x12240 (200 MP) JPEGs, which
# decode at 1/8 scale to 3.1 M pixels. A forged SOF can claim 65535x65535 (4.3 G pixels, 12.9 GB as
# RGB); that is refused before decoding.
FILE_LIMITS = Limits(max_width=16384, max_height=16384, max_pixels=16384 * 16384)

# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not SOFs.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8)])  # TEM, RST0-7: no length field
_REDUCED_FLAGS = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}


# --- files and sizes --------------------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720); ValueError naming the text when it is not WIDTHxHEIGHT, both >= 1."""
    try:
        width, height = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like 1280x720, got {text!r}") from None
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {text!r}")
    return width, height


def list_images(folder: str | Path) -> list[Path]:
    """Every image file below `folder` (suffix matched case-insensitively), sorted for a stable order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


# --- JPEG decode (guarded) and encode ---------------------------------------------------------------


# SOF2, SOF6, SOF10, SOF14: progressive (whole-image coefficient buffer while decoding)
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# The most pixels a JPEG is decoded to, whatever the preprocessing asks (a 1080p frame). Only a small
# gaze crop of a huge frame would ask for more: at scale 0.05 a 4096x4096 frame was decoded whole,
# 104 ms and 96 MB; within this budget it is decoded at 1/4 scale.
MAX_DECODED_PIXELS = 1920 * 1080


def jpeg_size(data: bytes | memoryview) -> tuple[int, int]:
    """(width, height) from the JPEG's SOF segment, without decoding; corrupt_image if there is none."""
    width, height, _ = jpeg_header(data)
    return width, height


def jpeg_header(data: bytes | memoryview) -> tuple[int, int, bool]:
    """(width, height, progressive) from the JPEG's SOF segment; corrupt_image if there is none."""
    view = memoryview(data)
    if len(view) < 4 or view[0] != 0xFF or view[1] != 0xD8:
        raise ProtocolError(ErrorCode.CORRUPT_IMAGE, "payload does not start with a JPEG SOI marker")
    pos = 2
    while pos + 4 <= len(view):
        if view[pos] != 0xFF:
            raise ProtocolError(ErrorCode.CORRUPT_IMAGE, f"JPEG marker expected at byte {pos}")
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or SOS before any SOF
            break
        length = int.from_bytes(view[pos + 2 : pos + 4], "big")
        if marker in _SOF_MARKERS:
            if length < 7 or pos + 9 > len(view):
                break
            height = int.from_bytes(view[pos + 5 : pos + 7], "big")
            width = int.from_bytes(view[pos + 7 : pos + 9], "big")
            return width, height, marker in _PROGRESSIVE_SOF
        if length < 2:
            break
        pos += 2 + length
    raise ProtocolError(ErrorCode.CORRUPT_IMAGE, "no JPEG frame header (SOF) found")


def check_size(width: int, height: int, limits: Limits) -> None:
    """image_too_large unless width x height fits the limits (each side and the pixel count)."""
    if width > limits.max_width or height > limits.max_height or width * height > limits.max_pixels:
        raise ProtocolError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"{width}x{height} exceeds the limits ({limits.max_width}x{limits.max_height}, "
            f"{limits.max_pixels} pixels)",
        )


def check_aspect(width: int, height: int, limits: Limits) -> None:
    """bad_dimensions when the longer side exceeds max_aspect_ratio times the shorter one."""
    if max(width, height) > limits.max_aspect_ratio * min(width, height):
        raise ProtocolError(
            ErrorCode.BAD_DIMENSIONS,
            f"{width}x{height} is more elongated than limits.max_aspect_ratio {limits.max_aspect_ratio:g}",
        )


def reduction_factor(
    width: int, height: int, needed_shorter: int, max_pixels: int = MAX_DECODED_PIXELS
) -> int:
    """Largest libjpeg scale-down (8, 4, 2) that still leaves the shorter side >= what the model needs,
    and in any case one that keeps the decoded image within `max_pixels`."""
    shorter = min(width, height)
    factor = next((f for f in (8, 4, 2) if shorter // f >= needed_shorter), 1)
    while factor < 8 and (width // factor) * (height // factor) > max_pixels:
        factor *= 2
    return factor


def decode_checked_jpeg(
    data: bytes | memoryview, size: tuple[int, int], needed_shorter: int | None = None
) -> np.ndarray:
    """Decode a JPEG whose SOF `size` the caller has already read (jpeg_size) and checked (check_size).

    The served path reads the size once to compare it with the frame header; this lets it decode
    without walking the header again. Everyone else calls decode_jpeg.
    """
    factor = 1 if needed_shorter is None else reduction_factor(size[0], size[1], needed_shorter)
    flags = _REDUCED_FLAGS.get(factor, cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if bgr is None:
        raise ProtocolError(ErrorCode.CORRUPT_IMAGE, "JPEG data could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_jpeg(
    data: bytes | memoryview, needed_shorter: int | None = None, limits: Limits = FILE_LIMITS
) -> np.ndarray:
    """RGB uint8 HxWx3 from JPEG bytes, decoded at the smallest scale that keeps `needed_shorter` pixels
    on the shorter side (None: full size). Refused (image_too_large) before decoding beyond `limits`;
    the default suits files on disk, the server passes the wire's."""
    width, height = jpeg_size(data)
    check_size(width, height, limits)
    return decode_checked_jpeg(data, (width, height), needed_shorter)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB uint8 image at `quality` (1-100), as a headset client encodes a frame."""
    ok, data = cv2.imencode(
        ".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


# --- geometry ---------------------------------------------------------------------------------------


# Up to this shrink on both sides, bilinear interpolation is used instead of area averaging. With
# OpenCV's half-pixel centres, output samples of a shrink by s <= 2 lie s pixels apart and each reads
# the two source pixels around it, so every source pixel still contributes (no pixel is skipped, which
# is what aliases). Area averaging at a non-integer ratio is OpenCV's slow general path: a 720p frame
# decoded at 1/2 scale (640x360) to the default model's 325x183 took 0.97 ms with INTER_AREA against
# 0.25 ms bilinear (the 1/2-scale decode itself took 0.74 ms), and the pixels differ by 0.2 grey
# levels on average (docs/benchmarks.md, "Preprocessing cost").
BILINEAR_MAX_SHRINK = 2.0


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to width x height: area averaging when a side shrinks by more than BILINEAR_MAX_SHRINK
    (no aliasing), else bilinear."""
    shrink = max(image.shape[1] / width, image.shape[0] / height)
    interpolation = cv2.INTER_AREA if shrink > BILINEAR_MAX_SHRINK else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def resize_and_centre_crop(image: np.ndarray, shorter: int, width: int, height: int) -> np.ndarray:
    """Resize so the shorter side is `shorter` (never below the crop), then take the centred crop."""
    image_h, image_w = image.shape[:2]
    scale = shorter / min(image_h, image_w)
    new_w, new_h = max(width, round(image_w * scale)), max(height, round(image_h * scale))
    resized = resize(image, new_w, new_h)
    top = (new_h - height) // 2
    left = (new_w - width) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


# --- effects ----------------------------------------------------------------------------------------


def motion_blur(image: np.ndarray, length_px: int, angle_deg: float) -> np.ndarray:
    """Linear motion blur, like a fast head turn during the exposure: every pixel is smeared evenly
    along a straight streak through it.

    The kernel is a one-pixel line through the centre of an odd-sized square, its ends (length_px - 1)/2
    from the centre, rounded to whole pixels (so an even length_px spans length_px + 1 pixels along
    an axis). `angle_deg` is the streak's direction, clockwise from +x in image coordinates (y down);
    a streak and its opposite are the same blur. Sums are preserved (the kernel sums to 1); borders
    reflect. Lengths below 2 return the image unchanged.
    """
    length_px = int(length_px)
    if length_px < 2:
        return image
    size = length_px | 1  # odd, so the kernel has a centre pixel and the image does not shift
    kernel = np.zeros((size, size), dtype=np.float32)
    centre = size // 2
    dx = math.cos(math.radians(angle_deg)) * (length_px - 1) / 2
    dy = math.sin(math.radians(angle_deg)) * (length_px - 1) / 2
    start = (round(centre - dx), round(centre - dy))
    end = (round(centre + dx), round(centre + dy))
    cv2.line(kernel, start, end, 1.0, thickness=1)
    kernel /= kernel.sum()
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)
