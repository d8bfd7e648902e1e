"""Training augmentation that imitates what a headset stream does to a frame.

Order follows the physical path: head motion blurs the exposure, the client JPEG-encodes at some
quality, the server decodes with its reduced-resolution decoder, and the model sees a crop; lighting
changes (colour jitter) are global, so they are applied to the small crop, where they are cheap.
Decoding, encoding, resizing and the motion blur come from server.imaging: the serving decoder, and the
blur vr-sim renders with. Every random choice comes from the `rng` passed in, so a sample's augmentation
depends only on (seed, epoch, index): resumed and distributed runs see the same pixels as an
uninterrupted single-process run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vr_recognition.server.imaging import decode_jpeg, encode_jpeg, motion_blur, resize


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
    frame_mapping: str = "centre_crop"  # crops come from the region serving classifies

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
        """A random box inside the region serving classifies, resized to the square input: the centred
        square (centre_crop), or the whole frame, whose shape the resize then distorts as serving's
        stretch does (stretch)."""
        height, width = rgb.shape[:2]
        if self.frame_mapping == "stretch":
            region_h, region_w = height, width
        else:
            region_h = region_w = min(height, width)
        top0, left0 = (height - region_h) // 2, (width - region_w) // 2
        for _ in range(10):
            scale = rng.uniform(*self.crop_scale)
            ratio = math.exp(rng.uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])))
            box_w, box_h = (
                round(region_w * math.sqrt(scale * ratio)),
                round(region_h * math.sqrt(scale / ratio)),
            )
            if 0 < box_w <= region_w and 0 < box_h <= region_h:
                break
        else:
            box_w, box_h = region_w, region_h
        top = top0 + int(rng.integers(0, region_h - box_h + 1))
        left = left0 + int(rng.integers(0, region_w - box_w + 1))
        return resize(rgb[top : top + box_h, left : left + box_w], self.img_size, self.img_size)


def recompress(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode as the client would (JPEG at `quality`) and decode with the serving decoder."""
    return decode_jpeg(encode_jpeg(rgb, quality), min(rgb.shape[:2]))
