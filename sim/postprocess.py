"""Image-space effects applied after rendering (the software renderer has no motion blur of its own)."""

from __future__ import annotations

import math

import cv2
import numpy as np


def linear_motion_blur(rgb: np.ndarray, length_px: int, angle_deg: float) -> np.ndarray:
    """Smear along one direction, like a fast head turn during the exposure."""
    length_px = int(length_px)
    if length_px < 2:
        return rgb
    size = length_px | 1  # odd, so the kernel has a centre pixel
    kernel = np.zeros((size, size), dtype=np.float32)
    centre = size // 2
    dx = math.cos(math.radians(angle_deg)) * (length_px - 1) / 2
    dy = math.sin(math.radians(angle_deg)) * (length_px - 1) / 2
    start = (round(centre - dx), round(centre - dy))
    end = (round(centre + dx), round(centre + dy))
    cv2.line(kernel, start, end, 1.0, thickness=1)
    kernel /= kernel.sum()
    return cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a decodable image")
    return bgr[:, :, ::-1].copy()
