"""The frames every stream sends, prepared once up front.

Resizing and JPEG encoding happen before the clock starts, so the load generator spends its time
sending, not encoding: what is measured is the server, at the rate a headset would send.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vr_recognition.bench.errors import BenchError
from vr_recognition.server.imaging import encode_jpeg, list_images, resize


@dataclass(frozen=True)
class EncodedFrame:
    jpeg: bytes
    width: int
    height: int


def encode(rgb: np.ndarray, size: tuple[int, int], quality: int) -> EncodedFrame:
    """Resize to the headset's frame size and JPEG-encode, as the headset would before sending."""
    width, height = size
    if rgb.shape[1] != width or rgb.shape[0] != height:
        rgb = resize(rgb, width, height)
    return EncodedFrame(encode_jpeg(rgb, quality), width, height)


def frames_from_folder(
    folder: Path, size: tuple[int, int], quality: int, limit: int = 256
) -> list[EncodedFrame]:
    """Up to `limit` images from a folder (spread evenly over it), resized and encoded."""
    files = list_images(folder)  # sorted: two runs send the same frames
    if not files:
        raise BenchError(f"no images found under {folder}")
    if len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    frames = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue  # unreadable file: skip it rather than abort a benchmark
        frames.append(encode(bgr[:, :, ::-1], size, quality))
    if not frames:
        raise BenchError(f"none of the images under {folder} could be read")
    return frames


def frames_from_sim(
    size: tuple[int, int], quality: int, fps: float, seconds: float = 2.0
) -> list[EncodedFrame]:
    """`seconds` of a simulated head path rendered by vr-sim: consecutive frames of a moving view."""
    try:
        from vr_recognition.sim.catalog import DEFAULT_CLASSES
        from vr_recognition.sim.headset import LiveScene
    except ImportError as exc:
        raise BenchError(f"--sim needs the sim extra (pip install '.[sim]'): {exc}") from None
    count = max(1, round(fps * seconds))
    with LiveScene(size[0], size[1], DEFAULT_CLASSES, seed=0, fps=fps) as scene:
        return [encode(scene.next_frame().rgb, size, quality) for _ in range(count)]
