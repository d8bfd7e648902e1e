"""Find the labelled images of a dataset folder and split them, before any training starts.

Two layouts are understood: capture sessions (docs/capture-format.md, written by vr-sim and the Unity
recorder) and ImageFolder (`DIR/train/<class>/*`, `DIR/val/<class>/*`, or one `DIR/<class>/*` split by
a seeded fraction). Every image is opened once here, so a corrupt file is skipped and listed instead of
crashing epoch 7, and a layout mistake (empty class, val class unknown to train) fails before the first
step. No torch: only the serving decoder and the capture-format reader.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vr_recognition.server.imaging import IMAGE_SUFFIXES  # the formats every tool reads, named once
from vr_recognition.server.preprocess import decode_jpeg
from vr_recognition.training.capture_format import CaptureFormatError, find_sessions, read_dataset
from vr_recognition.training.errors import DatasetError

JPEG_SOI = b"\xff\xd8"
# Non-JPEG files are re-encoded once so that training and validation go through the serving JPEG decoder.
REENCODE_QUALITY = 95
# Images are checked at this reduced size (libjpeg DCT scaling): enough to prove the file decodes.
CHECK_SHORTER_SIDE = 16


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass
class DatasetIndex:
    """The training and validation samples, the class names, and what was left out and why."""

    source: str  # "capture-sessions", "imagefolder-split-dirs" or "imagefolder-fraction"
    root: Path
    classes: tuple[str, ...]
    train: list[Sample]
    val: list[Sample]
    skipped: list[SkippedFile] = field(default_factory=list)

    def summary(self) -> dict:
        """Counts per split and class plus the skipped files: stored in metrics.json and the ONNX file."""

        def counts(samples: Iterable[Sample]) -> dict[str, int]:
            counter = Counter(sample.label for sample in samples)
            return {name: counter.get(index, 0) for index, name in enumerate(self.classes)}

        return {
            "source": self.source,
            "root": self.root.name,
            "classes": list(self.classes),
            "train": {"total": len(self.train), "per_class": counts(self.train)},
            "val": {"total": len(self.val), "per_class": counts(self.val)},
            "skipped": {"count": len(self.skipped), "files": [vars(s) for s in self.skipped]},
        }


def evenly_spread(samples: Sequence[Sample], count: int) -> list[Sample]:
    """At most `count` samples, spread evenly over `samples`. A split is sorted by path, so an even spread
    covers every class of an ImageFolder and the whole length of a capture session, where the first
    `count` would be one class or one moment (used for calibration and batch-norm statistics)."""
    if len(samples) <= count:
        return list(samples)
    step = len(samples) / count
    return [samples[int(i * step)] for i in range(count)]


def read_jpeg_bytes(path: Path) -> bytes:
    """The file as JPEG bytes; other formats are decoded and re-encoded once (quality 95)."""
    data = path.read_bytes()
    if data[:2] == JPEG_SOI:
        return data
    pixels = cv2.imdecode(
        np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    )
    if pixels is None:
        raise ValueError("not a decodable image")
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, REENCODE_QUALITY])
    if not ok:
        raise ValueError("could not re-encode as JPEG")
    return encoded.tobytes()


def check_image(path: Path) -> str | None:
    """None when the image decodes with the serving decoder, else the reason it cannot be used."""
    try:
        decode_jpeg(read_jpeg_bytes(path), CHECK_SHORTER_SIDE)
    except Exception as error:  # any failure to read or decode means: skip this file
        return f"{type(error).__name__}: {error}"
    return None


def index_dataset(root: str | Path, val_fraction: float = 0.2, seed: int = 0) -> DatasetIndex:
    """Detect the layout under `root`, check every image, split, and validate the class lists."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    try:
        find_sessions(root)
    except CaptureFormatError:
        pass
    else:
        return _index_capture_sessions(root, val_fraction, seed)
    if (root / "train").is_dir():
        return _index_split_dirs(root)
    return _index_single_folder(root, val_fraction, seed)


def _checked(candidates: list[tuple[Path, str, str | None]], skipped: list[SkippedFile], root: Path):
    """Keep (path, class, split) triples whose image decodes; record the others."""
    for path, label, split in candidates:
        reason = check_image(path)
        if reason is None:
            yield path, label, split
        else:
            skipped.append(SkippedFile(path=str(path.relative_to(root)), reason=reason))


def _index_capture_sessions(root: Path, val_fraction: float, seed: int) -> DatasetIndex:
    try:
        sessions = read_dataset(root)
    except CaptureFormatError as error:
        raise DatasetError(str(error)) from None
    classes = tuple(sorted({name for session in sessions for name in session.info.classes}))
    skipped: list[SkippedFile] = []
    candidates = [
        (session.image_path(frame), frame.label, frame.split)
        for session in sessions
        for frame in session.frames
    ]
    kept = list(_checked([(p, lbl, s) for p, lbl, s in candidates if p.is_file()], skipped, root))
    skipped.extend(
        SkippedFile(path=str(p.relative_to(root)), reason="file missing")
        for p, _, _ in candidates
        if not p.is_file()
    )
    fixed = [(path, label, split) for path, label, split in kept if split is not None]
    undecided = [(path, label) for path, label, split in kept if split is None]
    train_part, val_part = _split_by_fraction(undecided, val_fraction, seed)
    train = [(p, lbl) for p, lbl, s in fixed if s == "train"] + train_part
    val = [(p, lbl) for p, lbl, s in fixed if s == "val"] + val_part
    return _finish("capture-sessions", root, classes, train, val, skipped)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _index_split_dirs(root: Path) -> DatasetIndex:
    if not (root / "val").is_dir():
        raise DatasetError(f"{root}: has train/ but no val/ (expected {root}/val/<class>/...)")
    classes = tuple(d.name for d in _class_dirs(root / "train"))
    if not classes:
        raise DatasetError(f"{root / 'train'}: no class folders")
    skipped: list[SkippedFile] = []
    unknown = [d.name for d in _class_dirs(root / "val") if d.name not in classes]
    if unknown:
        raise DatasetError(
            f"{root / 'val'}: class folder(s) {unknown} do not exist in train/ "
            f"(train classes: {list(classes)})"
        )
    splits = {}
    for split in ("train", "val"):
        candidates = [(path, d.name, split) for d in _class_dirs(root / split) for path in _images_in(d)]
        splits[split] = [(p, lbl) for p, lbl, _ in _checked(candidates, skipped, root)]
    return _finish("imagefolder-split-dirs", root, classes, splits["train"], splits["val"], skipped)


def _index_single_folder(root: Path, val_fraction: float, seed: int) -> DatasetIndex:
    class_dirs = _class_dirs(root)
    if not class_dirs:
        raise DatasetError(
            f"{root}: neither capture sessions (session.json) nor class folders (ImageFolder) found"
        )
    classes = tuple(d.name for d in class_dirs)
    skipped: list[SkippedFile] = []
    candidates = [(path, d.name, None) for d in class_dirs for path in _images_in(d)]
    kept = [(p, lbl) for p, lbl, _ in _checked(candidates, skipped, root)]
    train, val = _split_by_fraction(kept, val_fraction, seed)
    return _finish("imagefolder-fraction", root, classes, train, val, skipped)


def _split_by_fraction(
    items: list[tuple[Path, str]], val_fraction: float, seed: int
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Per class, a seeded round(fraction * n) items go to val (at least one train item stays)."""
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    train: list[tuple[Path, str]] = []
    val: list[tuple[Path, str]] = []
    by_class: dict[str, list[tuple[Path, str]]] = {}
    for item in items:
        by_class.setdefault(item[1], []).append(item)
    for label in sorted(by_class):
        members = sorted(by_class[label])
        random.Random(f"{seed}:{label}").shuffle(members)
        count = min(round(val_fraction * len(members)), len(members) - 1)
        val.extend(members[:count])
        train.extend(members[count:])
    return train, val


def _finish(
    source: str,
    root: Path,
    classes: tuple[str, ...],
    train: list[tuple[Path, str]],
    val: list[tuple[Path, str]],
    skipped: list[SkippedFile],
) -> DatasetIndex:
    present = Counter(label for _, label in train)
    empty = [name for name in classes if present[name] == 0]
    if empty:
        raise DatasetError(
            f"{root}: class(es) {empty} have no usable training images"
            + (f" ({len(skipped)} file(s) skipped as unreadable)" if skipped else "")
        )
    unknown = sorted({label for _, label in val} - set(classes))
    if unknown:
        raise DatasetError(f"{root}: validation class(es) {unknown} are unknown to the training set")
    if not val:
        raise DatasetError(f"{root}: no validation images (add val/ or set --val-fraction > 0)")
    position = {name: index for index, name in enumerate(classes)}
    return DatasetIndex(
        source=source,
        root=root,
        classes=classes,
        train=[Sample(path, position[label]) for path, label in sorted(train)],
        val=[Sample(path, position[label]) for path, label in sorted(val)],
        skipped=sorted(skipped, key=lambda s: s.path),
    )
