"""Training augmentation that imitates what a headset stream does to a frame.

Order follows the physical path: head motion blurs the exposure, the client JPEG-encodes at some
quality, the server decodes with its reduced-resolution decoder, and the model sees a crop; lighting
changes (colour jitter) are global, so they are applied to the small crop, where they are cheap.
Decoding uses server.preprocess.decode_jpeg, the serving decoder. Every random choice comes from the
`rng` passed in, so a sample's augmentation depends only on (seed, epoch, index): resumed and
distributed runs see the same pixels as an uninterrupted single-process run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from vr_recognition.server.preprocess import decode_jpeg


@dataclass(frozen=True)
class StreamAugmentation:
    img_size: int
    resize_shorter: int
    jpeg_quality: tuple[int, int] = (60, 95)  # the range headset clients send
    blur_probability: float = 0.3
    max_blur_length: int = 9  # pixels at the decoded (reduced) resolution
    colour_jitter: float = 0.25  # brightness, contrast and saturation factors in [1 - j, 1 + j]
    crop_scale: tuple[float, float] = (0.35, 1.0)  # area fraction of the centred square
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    def __call__(self, jpeg: bytes, rng: np.random.Generator) -> np.ndarray:
        """JPEG bytes -> uint8 img_size x img_size x 3 RGB, augmented."""
        rgb = decode_jpeg(jpeg, self.resize_shorter)
        if rng.random() < self.blur_probability:
            rgb = motion_blur(rgb, int(rng.integers(3, self.max_blur_length + 1)), float(rng.uniform(0, 180)))
        rgb = recompress(rgb, int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)))
        rgb = self._random_resized_crop(rgb, rng)
        rgb = self._colour_jitter(rgb, rng)  # global lighting change; applied on the small crop for speed
        if self.flip and rng.random() < 0.5:
            rgb = rgb[:, ::-1]
        return np.ascontiguousarray(rgb)

    def _colour_jitter(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.colour_jitter <= 0:
            return rgb
        low, high = 1 - self.colour_jitter, 1 + self.colour_jitter
        brightness, contrast, saturation = rng.uniform(low, high, size=3)
        image = rgb.astype(np.float32) * brightness
        grey = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        image = (image - grey.mean()) * contrast + grey.mean()
        grey = (image @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
        image = (image - grey) * saturation + grey
        return np.clip(image, 0, 255).astype(np.uint8)

    def _random_resized_crop(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random box inside the centred square (what serving's centre crop sees, plus a margin)."""
        height, width = rgb.shape[:2]
        side = min(height, width)
        top0, left0 = (height - side) // 2, (width - side) // 2
        for _ in range(10):
            area = side * side * rng.uniform(*self.crop_scale)
            ratio = math.exp(rng.uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])))
            box_w, box_h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
            if 0 < box_w <= side and 0 < box_h <= side:
                break
        else:
            box_w = box_h = side
        top = top0 + int(rng.integers(0, side - box_h + 1))
        left = left0 + int(rng.integers(0, side - box_w + 1))
        crop = rgb[top : top + box_h, left : left + box_w]
        shrinking = box_w > self.img_size or box_h > self.img_size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        return cv2.resize(crop, (self.img_size, self.img_size), interpolation=interpolation)


def motion_blur(rgb: np.ndarray, length: int, angle_deg: float) -> np.ndarray:
    """Linear motion blur: a line kernel of `length` pixels at `angle_deg` (head turning while exposing)."""
    kernel = np.zeros((length, length), dtype=np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT)


def recompress(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode as the client would (JPEG at `quality`) and decode with the serving decoder."""
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return decode_jpeg(encoded.tobytes(), min(rgb.shape[:2]))
