"""Small image datasets for the train-vr tests: real JPEGs written by OpenCV, one coloured shape per
class so a tiny network can learn them in a few steps. Shared by the tests/test_train_* modules (a
helper module, so that no test module imports another)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vr_recognition.training.capture_format import FrameRecord, SessionInfo, SessionWriter, frame_image_name

CLASSES = ("circle", "square", "triangle")
COLOURS = {"circle": (40, 40, 220), "square": (40, 200, 40), "triangle": (220, 60, 40)}  # BGR


def shape_image(label: str, index: int, width: int = 80, height: int = 60) -> np.ndarray:
    """A BGR frame: noisy background, the class's coloured shape near the centre."""
    rng = np.random.default_rng([index, len(label)])
    image = rng.integers(60, 160, size=(height, width, 3), dtype=np.uint8)
    cx, cy = width // 2 + int(rng.integers(-4, 5)), height // 2 + int(rng.integers(-4, 5))
    r = min(width, height) // 4 + int(rng.integers(-2, 3))
    colour = COLOURS[label]
    if label == "circle":
        cv2.circle(image, (cx, cy), r, colour, -1)
    elif label == "square":
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    else:
        points = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], dtype=np.int32)
        cv2.fillPoly(image, [points], colour)
    return image


def write_jpeg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality])


def write_imagefolder(root: Path, per_class: int = 8, val_per_class: int = 0, classes=CLASSES) -> Path:
    """root/<class>/*.jpg, or root/train/<class>/ and root/val/<class>/ when val_per_class > 0."""
    for label in classes:
        for index in range(per_class + val_per_class):
            if val_per_class:
                split = "val" if index < val_per_class else "train"
                path = root / split / label / f"{index:03d}.jpg"
            else:
                path = root / label / f"{index:03d}.jpg"
            write_jpeg(path, shape_image(label, index))
    return root


def write_capture_session(root: Path, per_class: int = 6, val_per_class: int = 2) -> Path:
    """One capture session (docs/capture-format.md) with a fixed split; half the frames use split=null."""
    info = SessionInfo(source="tests", width=80, height=60, vertical_fov_deg=90.0, classes=CLASSES)
    number = 0
    with SessionWriter(root / "session-1", info) as writer:
        for label in CLASSES:
            for index in range(per_class):
                relative = frame_image_name(number)
                write_jpeg(writer.image_path_for(relative), shape_image(label, index))
                split = "val" if index < val_per_class else ("train" if index % 2 else None)
                writer.add_frame(
                    FrameRecord(image=relative, label=label, timestamp_s=number / 90, split=split)
                )
                number += 1
    return root
