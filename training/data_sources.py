"""Find the labelled images of a dataset folder and split them, before any training starts.

Three layouts are understood: capture sessions (docs/capture-format.md, written by vr-sim and the Unity
recorder), Unity Perception SOLO datasets (training/solo.py; a sample is a labelled box's crop, or a
frame), and ImageFolder (`DIR/train/<class>/*`, `DIR/val/<class>/*`, or one `DIR/<class>/*` split by
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
from vr_recognition.training import solo
from vr_recognition.training.capture_format import CaptureFormatError, find_sessions, read_dataset
from vr_recognition.training.config import TRAIN_DEFAULTS
from vr_recognition.training.errors import DatasetError

JPEG_SOI = b"\xff\xd8"
# Non-JPEG files are re-encoded once so that training and validation go through the serving JPEG decoder.
REENCODE_QUALITY = 95
# Images are checked at this reduced size (libjpeg DCT scaling): enough to prove the file decodes.
CHECK_SHORTER_SIDE = 16


@dataclass(frozen=True)
class Sample:
    """An image file and its class; with `crop` (left, top, right, bottom pixels), only that region of it
    (a labelled box of a SOLO frame). Read its pixels with sample_jpeg_bytes."""

    path: Path
    label: int
    crop: solo.Crop | None = None


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass
class DatasetIndex:
    """The training and validation samples, the class names, and what was left out and why."""

    source: str  # "capture-sessions", "unity-solo", "imagefolder-split-dirs" or "imagefolder-fraction"
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
    return _encode(_decode(data))


def sample_jpeg_bytes(sample: Sample) -> bytes:
    """A sample as the JPEG bytes that training, validation and evaluation read: its file, or the crop,
    cut from the decoded file and encoded at quality 95 like any re-encoded file. Crops are cut on every
    read rather than stored: nothing to invalidate or clean up, no memory held, and it costs what a PNG
    sample already costs (one decode of the frame; the small crop encodes in well under a millisecond)."""
    if sample.crop is None:
        return read_jpeg_bytes(sample.path)
    left, top, right, bottom = sample.crop
    return _encode(_decode(sample.path.read_bytes())[top:bottom, left:right])


def _decode(data: bytes) -> np.ndarray:
    """BGR pixels of an image file's bytes (any format OpenCV reads)."""
    pixels = cv2.imdecode(
        np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    )
    if pixels is None:
        raise ValueError("not a decodable image")
    return pixels


def _encode(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(
        ".jpg", np.ascontiguousarray(pixels), [cv2.IMWRITE_JPEG_QUALITY, REENCODE_QUALITY]
    )
    if not ok:
        raise ValueError("could not re-encode as JPEG")
    return encoded.tobytes()


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, decoded in full: proves it decodes, and crops need its size."""
    height, width = _decode(path.read_bytes()).shape[:2]
    return width, height


def check_image(path: Path) -> str | None:
    """None when the image decodes with the serving decoder, else the reason it cannot be used."""
    try:
        decode_jpeg(read_jpeg_bytes(path), CHECK_SHORTER_SIDE)
    except Exception as error:  # any failure to read or decode means: skip this file
        return f"{type(error).__name__}: {error}"
    return None


def index_dataset(
    root: str | Path,
    val_fraction: float = 0.2,
    seed: int = 0,
    *,
    solo_samples: str = TRAIN_DEFAULTS["solo_samples"],
    solo_margin: float = TRAIN_DEFAULTS["solo_margin"],
) -> DatasetIndex:
    """Detect the layout under `root`, check every image, split, and validate the class lists.
    `solo_samples` and `solo_margin` only matter for a SOLO dataset (training/solo.py)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    try:
        find_sessions(root)
    except CaptureFormatError:
        pass
    else:
        return _index_capture_sessions(root, val_fraction, seed)
    if solo.is_solo_dataset(root):
        return _index_solo(root, val_fraction, seed, solo_samples, solo_margin)
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


def _index_solo(root: Path, val_fraction: float, seed: int, mode: str, margin: float) -> DatasetIndex:
    """Unity Perception SOLO: samples per box or per frame, classes the labels that occur (sorted; the
    label config often lists labels the scenes never show, which would be empty classes), split by
    sequence (solo.split_by_sequence)."""
    samples, problems = solo.read_samples(root, _image_size, mode, margin)
    skipped = [SkippedFile(path=path, reason=reason) for path, reason in problems]
    if not samples:
        detail = f"; {len(skipped)} skipped, first {skipped[0].path}: {skipped[0].reason}" if skipped else ""
        raise DatasetError(
            f"{root}: Unity Perception (SOLO) dataset without a usable sample for --solo-samples {mode} "
            f"(expected sequence.N/stepK{solo.FRAME_SUFFIX} with a camera image and labelled 2D boxes"
            f"{detail})"
        )
    classes = tuple(sorted({sample.label for sample in samples}))
    train, val = solo.split_by_sequence(samples, val_fraction, seed)
    return _finish(
        "unity-solo",
        root,
        classes,
        [(s.image, s.label, s.crop) for s in train],
        [(s.image, s.label, s.crop) for s in val],
        skipped,
    )


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
    train: Sequence[tuple],
    val: Sequence[tuple],
    skipped: list[SkippedFile],
) -> DatasetIndex:
    """Check the class lists and build the index; items are (path, class name) or, for crops,
    (path, class name, crop), sorted so that the order never depends on the file system."""
    present = Counter(item[1] for item in train)
    empty = [name for name in classes if present[name] == 0]
    if empty:
        raise DatasetError(
            f"{root}: class(es) {empty} have no usable training images"
            + (f" ({len(skipped)} file(s) skipped as unreadable)" if skipped else "")
        )
    unknown = sorted({item[1] for item in val} - set(classes))
    if unknown:
        raise DatasetError(f"{root}: validation class(es) {unknown} are unknown to the training set")
    if not val:
        raise DatasetError(f"{root}: no validation images (add val/ or set --val-fraction > 0)")
    position = {name: index for index, name in enumerate(classes)}
    return DatasetIndex(
        source=source,
        root=root,
        classes=classes,
        train=[Sample(path, position[label], *crop) for path, label, *crop in sorted(train)],
        val=[Sample(path, position[label], *crop) for path, label, *crop in sorted(val)],
        skipped=sorted(skipped, key=lambda s: s.path),
    )
