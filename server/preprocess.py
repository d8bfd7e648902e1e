"""Frame bytes to model input: decode, orient, resize, crop. One implementation for both sides.

vr-serve calls it on every frame; train-vr's validation and its export parity check call the very
same functions on JPEG files, so training and serving cannot disagree on preprocessing.
Normalisation (mean/std) is not here: it is inside the exported graph. The image operations
themselves (guarded JPEG decoding, resizing, cropping) live in server.imaging; this module applies
them as a model's contract and a protocol frame say.
"""

from __future__ import annotations

import numpy as np

from vr_recognition.server.imaging import (
    check_size,
    decode_checked_jpeg,
    decode_jpeg,
    jpeg_size,
    resize,
    resize_and_centre_crop,
    square_around,
)
from vr_recognition.server.model_format import ModelContract
from vr_recognition.server.protocol import ErrorCode, Frame, ImageFormat, Limits, ProtocolError

# decode_jpeg and jpeg_size are imaging's; they stay importable from here for existing callers.
__all__ = [
    "decode_frame_image",
    "decode_jpeg",
    "gaze_crop",
    "jpeg_size",
    "needed_shorter_side",
    "preprocess_frame",
    "preprocess_jpeg",
    "resize_and_crop",
]


def decode_frame_image(frame: Frame, needed_shorter: int, limits: Limits) -> np.ndarray:
    """The frame's pixels as RGB uint8 HxWx3, upright, whatever the wire format.

    Checks in this order: the header's size against the limits (image_too_large), a JPEG's SOF size
    against the header (corrupt_image without a SOF, bad_dimensions when they differ), then decodes
    (corrupt_image). The SOF is read once: equal to the checked header size, it needs no second check.
    """
    check_size(frame.width, frame.height, limits)
    if frame.image_format is ImageFormat.JPEG:
        actual = jpeg_size(frame.payload)
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


def resize_and_crop(rgb: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Resize so the shorter side is contract.resize_shorter, then take the centred input-size crop."""
    return resize_and_centre_crop(rgb, contract.resize_shorter, contract.input_width, contract.input_height)


def gaze_crop(
    rgb: np.ndarray, gaze: tuple[float, float], scale: float, contract: ModelContract
) -> np.ndarray:
    """A square of side scale*min(h, w) centred on the gaze point (kept inside the image), resized."""
    crop = square_around(rgb, gaze, scale)
    return np.ascontiguousarray(resize(crop, contract.input_width, contract.input_height))


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
    """Training's validation path: a JPEG file to the model input, through the serving functions.

    Decoded under imaging.FILE_LIMITS (files on disk), not the wire's limits."""
    return resize_and_crop(decode_jpeg(data, needed_shorter_side(contract)), contract)
