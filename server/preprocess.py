"""Frame bytes to model input: decode, orient, resize, crop. One implementation for both sides.

vr-serve calls it on every frame; train-vr's validation and its export parity check call the very
same functions on JPEG files, so training and serving cannot disagree on preprocessing.
Normalisation (mean/std) is not here: it is inside the exported graph.

Decoding is guarded against decompression bombs: JPEG dimensions are read from the file's SOF
header and checked against the limits before a single pixel is decoded. Large JPEGs are decoded at
1/2, 1/4 or 1/8 scale by libjpeg itself (DCT scaling) when the model needs far fewer pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
from vr_recognition.server.model_format import ModelContract
from vr_recognition.server.protocol import ErrorCode, Frame, ImageFormat, Limits, ProtocolError

# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not SOFs.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8)])  # TEM, RST0-7: no length field
_REDUCED_FLAGS = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}


def jpeg_size(data: bytes | memoryview) -> tuple[int, int]:
    """(width, height) from the JPEG's SOF segment, without decoding; corrupt_image if there is none."""
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
            return width, height
        if length < 2:
            break
        pos += 2 + length
    raise ProtocolError(ErrorCode.CORRUPT_IMAGE, "no JPEG frame header (SOF) found")


def check_size(width: int, height: int, limits: Limits) -> None:
    if width > limits.max_width or height > limits.max_height or width * height > limits.max_pixels:
        raise ProtocolError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"{width}x{height} exceeds the limits ({limits.max_width}x{limits.max_height}, "
            f"{limits.max_pixels} pixels)",
        )


def reduction_factor(width: int, height: int, needed_shorter: int) -> int:
    """Largest libjpeg scale-down (8, 4, 2) that still leaves the shorter side >= what the model needs."""
    shorter = min(width, height)
    for factor in (8, 4, 2):
        if shorter // factor >= needed_shorter:
            return factor
    return 1


def decode_jpeg(data: bytes | memoryview, needed_shorter: int, limits: Limits | None = None) -> np.ndarray:
    """RGB uint8 HxWx3 from JPEG bytes, decoded at the smallest scale that keeps enough pixels."""
    width, height = jpeg_size(data)
    if limits is not None:
        check_size(width, height, limits)
    factor = reduction_factor(width, height, needed_shorter)
    flags = _REDUCED_FLAGS.get(factor, cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if bgr is None:
        raise ProtocolError(ErrorCode.CORRUPT_IMAGE, "JPEG data could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_frame_image(frame: Frame, needed_shorter: int, limits: Limits) -> np.ndarray:
    """The frame's pixels as RGB uint8 HxWx3, upright, whatever the wire format."""
    check_size(frame.width, frame.height, limits)
    if frame.image_format is ImageFormat.JPEG:
        actual = jpeg_size(frame.payload)
        if actual != (frame.width, frame.height):
            raise ProtocolError(
                ErrorCode.BAD_DIMENSIONS,
                f"JPEG is {actual[0]}x{actual[1]} but the header declares {frame.width}x{frame.height}",
            )
        rgb = decode_jpeg(frame.payload, needed_shorter, limits)
    else:
        channels = frame.image_format.channels
        pixels = np.frombuffer(frame.payload, dtype=np.uint8).reshape(frame.height, frame.width, channels)
        rgb = pixels[:, :, :3]
    if frame.rows_bottom_up:
        rgb = rgb[::-1]
    return rgb


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = width < image.shape[1] or height < image.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def resize_and_crop(rgb: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Resize so the shorter side is contract.resize_shorter, then take the centred input-size crop."""
    height, width = rgb.shape[:2]
    scale = contract.resize_shorter / min(height, width)
    new_w, new_h = (
        max(contract.input_width, round(width * scale)),
        max(contract.input_height, round(height * scale)),
    )
    resized = _resize(rgb, new_w, new_h)
    top = (new_h - contract.input_height) // 2
    left = (new_w - contract.input_width) // 2
    return np.ascontiguousarray(
        resized[top : top + contract.input_height, left : left + contract.input_width]
    )


def gaze_crop(
    rgb: np.ndarray, gaze: tuple[float, float], scale: float, contract: ModelContract
) -> np.ndarray:
    """A square of side scale*min(h, w) centred on the gaze point (kept inside the image), resized."""
    height, width = rgb.shape[:2]
    side = max(1, round(scale * min(height, width)))
    left = min(max(round(gaze[0] * width - side / 2), 0), width - side)
    top = min(max(round(gaze[1] * height - side / 2), 0), height - side)
    crop = rgb[top : top + side, left : left + side]
    return np.ascontiguousarray(_resize(crop, contract.input_width, contract.input_height))


def needed_shorter_side(contract: ModelContract, gaze_crop_scale: float | None = None) -> int:
    """How many pixels the shorter side must keep after reduced decoding for this preprocessing."""
    if gaze_crop_scale is None:
        return contract.resize_shorter
    return int(np.ceil(max(contract.input_height, contract.input_width) / gaze_crop_scale))


def preprocess_frame(
    frame: Frame,
    contract: ModelContract,
    limits: Limits,
    gaze_crop_scale: float | None = None,
) -> np.ndarray:
    """Serving path: a decoded protocol frame to the model's uint8 HxWx3 input."""
    use_gaze = gaze_crop_scale is not None and frame.gaze is not None
    rgb = decode_frame_image(
        frame, needed_shorter_side(contract, gaze_crop_scale if use_gaze else None), limits
    )
    if use_gaze:
        return gaze_crop(rgb, frame.gaze, gaze_crop_scale, contract)
    return resize_and_crop(rgb, contract)


def preprocess_jpeg(data: bytes, contract: ModelContract) -> np.ndarray:
    """Training's validation path: a JPEG file to the model input, through the serving functions."""
    return resize_and_crop(decode_jpeg(data, needed_shorter_side(contract)), contract)
