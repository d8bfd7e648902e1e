"""Frame bytes to model input: decode, orient, resize, crop. One implementation for both sides.

vr-serve calls it on every frame; train-vr's validation and its export parity check call the very
same functions on JPEG files, so training and serving cannot disagree on preprocessing.
Normalisation (mean/std) is not here: it is inside the exported graph. The image operations
themselves (guarded JPEG decoding, resizing, cropping) live in server.imaging; this module applies
them as a model's contract and a protocol frame say.
"""

from __future__ import annotations

import math

import numpy as np

from vr_recognition.server.imaging import (
    check_aspect,
    check_size,
    decode_checked_jpeg,
    decode_jpeg,
    jpeg_header,
    jpeg_size,
    resize,
    resize_and_centre_crop,
)
from vr_recognition.server.model_format import ModelContract
from vr_recognition.server.protocol import (
    ErrorCode,
    Frame,
    ImageFormat,
    Limits,
    ProtocolError,
    gaze_crop_rect,
)

# decode_jpeg and jpeg_size are imaging's; they stay importable from here for existing callers.
__all__ = [
    "decode_frame_image",
    "decode_jpeg",
    "gaze_crop",
    "jpeg_size",
    "needed_shorter_side",
    "preprocess_frame",
    "preprocess_jpeg",
    "to_model_input",
]


def decode_frame_image(frame: Frame, needed_shorter: int, limits: Limits) -> np.ndarray:
    """The frame's pixels as RGB uint8 HxWx3, upright, whatever the wire format.

    Validation step 14 (docs/protocol.md 2.3), in this order: the declared size against the limits
    (image_too_large) and its aspect ratio (bad_dimensions); for a JPEG, no SOF (corrupt_image), the
    SOF's size against the limits and a progressive one against max_progressive_pixels
    (image_too_large), the SOF's size against the declared one (bad_dimensions); then the pixels
    (corrupt_image). The SOF is read once.
    """
    check_size(frame.width, frame.height, limits)
    check_aspect(frame.width, frame.height, limits)
    if frame.image_format is ImageFormat.JPEG:
        width, height, progressive = jpeg_header(frame.payload)
        actual = (width, height)
        check_size(width, height, limits)
        if progressive and width * height > limits.max_progressive_pixels:
            raise ProtocolError(
                ErrorCode.IMAGE_TOO_LARGE,
                f"progressive JPEG of {width}x{height} is over limits.max_progressive_pixels "
                f"({limits.max_progressive_pixels}); send it baseline",
            )
        if actual != (frame.width, frame.height):
            raise ProtocolError(
                ErrorCode.BAD_DIMENSIONS,
                f"JPEG is {actual[0]}x{actual[1]} but the header declares {frame.width}x{frame.height}",
            )
        rgb = decode_checked_jpeg(frame.payload, actual, needed_shorter)
    else:
        channels = frame.image_format.channels
        pixels = np.frombuffer(frame.payload, dtype=np.uint8).reshape(frame.height, frame.width, channels)
        rgb = pixels[:, :, :3]
    if frame.rows_bottom_up:
        rgb = rgb[::-1]
    return rgb


def to_model_input(rgb: np.ndarray, contract: ModelContract) -> np.ndarray:
    """A whole decoded frame to the H x W input, as the model's frame mapping says."""
    if contract.frame_mapping == "stretch":
        return np.ascontiguousarray(resize(rgb, contract.input_width, contract.input_height))
    return resize_and_centre_crop(rgb, contract.resize_shorter, contract.input_width, contract.input_height)


def gaze_crop(
    rgb: np.ndarray,
    gaze: tuple[float, float],
    scale: float,
    contract: ModelContract,
    frame_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The gaze square (protocol.gaze_crop_rect, in the frame's own pixel grid `frame_size`), taken from
    `rgb`, which may be that frame decoded at 1/2 to 1/8 scale, and resized to the input."""
    height, width = rgb.shape[:2]
    frame_w, frame_h = frame_size or (width, height)
    left, top, side = gaze_crop_rect(frame_w, frame_h, gaze[0], gaze[1], scale)
    sx, sy = width / frame_w, height / frame_h
    x0, y0 = math.floor(left * sx), math.floor(top * sy)
    x1 = max(x0 + 1, min(width, math.ceil((left + side) * sx)))
    y1 = max(y0 + 1, min(height, math.ceil((top + side) * sy)))
    crop = rgb[y0:y1, x0:x1]
    return np.ascontiguousarray(resize(crop, contract.input_width, contract.input_height))


def needed_shorter_side(contract: ModelContract, gaze_crop_scale: float | None = None) -> int:
    """How many pixels the shorter side must keep after reduced decoding for this preprocessing."""
    if gaze_crop_scale is not None:
        return int(np.ceil(max(contract.input_height, contract.input_width) / gaze_crop_scale))
    if contract.frame_mapping == "stretch":
        return max(contract.input_height, contract.input_width)
    return contract.resize_shorter


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
        return gaze_crop(rgb, frame.gaze, gaze_crop_scale, contract, (frame.width, frame.height))
    return to_model_input(rgb, contract)


def preprocess_jpeg(data: bytes, contract: ModelContract) -> np.ndarray:
    """Training's validation path: a JPEG file to the model input, through the serving functions.

    Decoded under imaging.FILE_LIMITS (files on disk), not the wire's limits."""
    return to_model_input(decode_jpeg(data, needed_shorter_side(contract)), contract)
