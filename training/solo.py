"""Unity Perception datasets (SOLO format) as classification samples for train-vr.

Unity's Perception package writes a SOLO dataset like this (SoloEndpoint.cs and
Documentation~/Schema/SoloSchema.md of com.unity.perception; pysolotools reads the same):

    DATASET/metadata.json, annotation_definitions.json, metric_definitions.json, sensor_definitions.json
    DATASET/sequence.N/stepK.frame_data.json     one per captured frame (N: scenario iteration)
    DATASET/sequence.N/stepK.camera.png          the camera image, named by the capture's `filename`

A frame_data.json is {"frame", "sequence", "step", "captures": [...], "metrics": [...]}; a camera capture
has "filename", "imageFormat", "dimension": [w, h] and "annotations"; an annotation whose "@type" is
"type.unity.com/unity.solo.BoundingBox2DAnnotation" lists boxes in "values": {"instanceId", "labelId",
"labelName", "origin": [x, y], "dimension": [w, h]}, in pixels with the origin at the top left.
annotation_definitions.json maps label ids to names in the box labeler's "spec": [{"label_id",
"label_name"}]. The metadata files are written when the simulation ends, so a run that was cut short has
sequence folders only; both are read.

A labelled box becomes one sample (the default): the box grown by a margin, made square, shifted into
the image. Square because every consumer of a sample looks at its centred square: serving's centre_crop
mapping classifies the centred window, training's random crops come from the centred square, and the
stretch mapping would distort anything else. A thin box's own rectangle would lose its ends to that
square; the square around it keeps the whole object and adds context on the short side. The margin
(--solo-margin, default 0.1 of the box side on each side) is small because Perception's boxes are tight
around the visible pixels: a little background shows the object's outline, as a served frame does, while
its randomised, cluttered scenes would pull neighbours into a wider crop. Alternatively a frame becomes
one sample, labelled by the label covering the largest total box area.

The parsing and geometry helpers are pure; read_samples does the file I/O, with the image decoder passed
in by data_sources so that one decoder serves every layout. Nothing here raises on bad data: a frame,
image or box that cannot be used comes back as a (path, reason) problem.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vr_recognition.training.errors import ConfigError, DatasetError

METADATA = "metadata.json"
ANNOTATION_DEFINITIONS = "annotation_definitions.json"
SEQUENCE_GLOB = "sequence.*"
FRAME_SUFFIX = ".frame_data.json"
BOX_TYPE = "BoundingBox2DAnnotation"  # the end of the "@type" (type.unity.com/unity.solo.…)

SAMPLE_MODES = ("boxes", "frames")
# Boxes whose shorter side is below this (pixels) are not used: too few pixels to classify, and mostly
# far-away objects or slivers cut by an occluder or the frame edge, whose square would be background.
MIN_BOX_SIDE = 16

Crop = tuple[int, int, int, int]  # left, top, right, bottom in pixels; right and bottom exclusive


@dataclass(frozen=True)
class Box:
    label: str
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class CaptureRecord:
    """One camera image of a frame and its 2D boxes, as frame_data.json describes them."""

    filename: str  # relative to the sequence folder
    size: tuple[int, int] | None  # the declared [width, height]
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class SoloSample:
    image: Path
    label: str
    crop: Crop | None  # None: the whole frame
    sequence: str  # the sequence folder: the unit of the train/val split
    frame: str  # the frame_data.json, relative to the root


def is_solo_dataset(root: Path) -> bool:
    """metadata.json beside annotation_definitions.json (a finished Perception run), or sequence folders
    holding frame_data.json files (a run cut short, which writes no metadata)."""
    if (root / METADATA).is_file() and (root / ANNOTATION_DEFINITIONS).is_file():
        return True
    return any(next(folder.glob(f"*{FRAME_SUFFIX}"), None) for folder in sequence_folders(root))


def sequence_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.glob(SEQUENCE_GLOB) if p.is_dir())


# --- parsing (pure) ---------------------------------------------------------------------------------


def label_names(definitions: object) -> dict[int, str]:
    """labelId -> name from annotation_definitions.json's box labeler spec; used when a box lacks its
    labelName. Anything malformed is ignored: the boxes carry their names in every Perception version."""
    names: dict[int, str] = {}
    entries = definitions.get("annotationDefinitions") if isinstance(definitions, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not (isinstance(entry, dict) and str(entry.get("@type", "")).endswith(BOX_TYPE)):
            continue
        for spec in entry.get("spec") or []:
            if isinstance(spec, dict) and isinstance(spec.get("label_name"), str):
                label_id = spec.get("label_id")
                if isinstance(label_id, int) and not isinstance(label_id, bool):
                    names[label_id] = spec["label_name"]
    return names


def _numbers(value: object, count: int = 2) -> tuple[float, ...] | None:
    if not isinstance(value, list | tuple) or len(value) != count:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return tuple(float(v) for v in value)


def parse_box(value: object, names: dict[int, str]) -> Box | str:
    """The box, or why it cannot be used."""
    if not isinstance(value, dict):
        return "not a JSON object"
    label = value.get("labelName")
    if not (isinstance(label, str) and label.strip()):
        label_id = value.get("labelId")
        label = names.get(label_id) if isinstance(label_id, int) else None
        if label is None:
            return f"no labelName, and labelId {label_id!r} is not in {ANNOTATION_DEFINITIONS}"
    origin, dimension = _numbers(value.get("origin")), _numbers(value.get("dimension"))
    if origin is None or dimension is None:
        return f"{label}: origin and dimension must be two numbers each"
    if dimension[0] <= 0 or dimension[1] <= 0:
        return f"{label}: empty box {dimension[0]:g}x{dimension[1]:g}"
    return Box(label, origin[0], origin[1], dimension[0], dimension[1])


def _filename(value: object) -> str | None:
    """A capture's image path, if it stays inside the sequence folder."""
    if not (isinstance(value, str) and value):
        return None
    path = PurePosixPath(value.replace("\\", "/"))
    return None if path.is_absolute() or ".." in path.parts else path.as_posix()


def parse_frame(frame: object, names: dict[int, str]) -> tuple[list[CaptureRecord], list[str]]:
    """The camera captures of one frame_data.json, and the problems found (boxes or captures that cannot
    be used). Captures without a `filename` (non-image sensors) are ignored."""
    if not isinstance(frame, dict):
        return [], ["not a JSON object"]
    captures = frame.get("captures") or []
    if not isinstance(captures, list):
        return [], ["'captures' is not a list"]
    records: list[CaptureRecord] = []
    problems: list[str] = []
    for capture in captures:
        if not isinstance(capture, dict) or "filename" not in capture:
            continue
        filename = _filename(capture["filename"])
        if filename is None:
            problems.append(f"capture {capture.get('id')!r}: {capture['filename']!r} is not a file name")
            continue
        dimension = _numbers(capture.get("dimension"))
        size = (round(dimension[0]), round(dimension[1])) if dimension else None
        boxes: list[Box] = []
        annotations = capture.get("annotations") or []
        for annotation in annotations if isinstance(annotations, list) else []:
            if not (isinstance(annotation, dict) and str(annotation.get("@type", "")).endswith(BOX_TYPE)):
                continue
            values = annotation.get("values") or []
            for number, value in enumerate(values if isinstance(values, list) else []):
                box = parse_box(value, names)
                if isinstance(box, Box):
                    boxes.append(box)
                else:
                    problems.append(f"{filename} box {number}: {box}")
        records.append(CaptureRecord(filename, size, tuple(boxes)))
    return records, problems


# --- geometry and labels (pure) ---------------------------------------------------------------------


def clip_box(box: Box, width: int, height: int) -> Box | None:
    """The part of the box inside the image; None when nothing is."""
    left, top = max(box.left, 0.0), max(box.top, 0.0)
    right, bottom = min(box.left + box.width, width), min(box.top + box.height, height)
    if right <= left or bottom <= top:
        return None
    return Box(box.label, left, top, right - left, bottom - top)


def _span(centre: float, length: float, limit: int) -> tuple[int, int]:
    """[start, end) of `length` pixels centred on `centre`, moved to lie inside [0, limit) and cut to
    `limit` when longer."""
    size = max(1, min(round(length), limit))
    start = min(max(round(centre - size / 2), 0), limit - size)
    return start, start + size


def box_crop(box: Box, width: int, height: int, margin: float) -> Crop:
    """The square around a box (its longer side plus `margin` of it on each side), centred on the box and
    moved into the image rather than cut, so the whole box stays in the square; only a square larger than
    the image is cut to the image, on that axis."""
    side = max(box.width, box.height) * (1 + 2 * margin)
    left, right = _span(box.left + box.width / 2, side, width)
    top, bottom = _span(box.top + box.height / 2, side, height)
    return left, top, right, bottom


def dominant_label(boxes: Iterable[Box]) -> str:
    """The label covering the largest total box area (ties: the first name in sorted order); there must
    be at least one box."""
    areas: Counter[str] = Counter()
    for box in boxes:
        areas[box.label] += box.width * box.height
    return max(sorted(areas), key=areas.__getitem__)


# --- reading a dataset ------------------------------------------------------------------------------


def _read_json(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


def read_samples(
    root: Path,
    image_size: Callable[[Path], tuple[int, int]],
    mode: str,
    margin: float,
    min_side: int = MIN_BOX_SIDE,
) -> tuple[list[SoloSample], list[tuple[str, str]]]:
    """Every usable sample of the SOLO dataset at `root`, and (path, reason) for what was left out.

    `image_size` decodes an image and returns (width, height), raising if it cannot: each image is decoded
    once here, so a broken file is listed now instead of failing an epoch. Data errors (unreadable JSON,
    missing or broken image, size mismatch, a box outside its image) are listed one by one; what is left
    out by rule (boxes under `min_side`, frames without a box) is counted, one line per kind, because a
    large Perception dataset has thousands of distant objects and those lines end up in metrics.json and
    the model's metadata."""
    if mode not in SAMPLE_MODES:
        raise ConfigError(f"--solo-samples must be one of {', '.join(SAMPLE_MODES)}, got {mode!r}")
    if not (math.isfinite(margin) and margin >= 0):
        raise ConfigError(f"--solo-margin must be >= 0 (a fraction of the box side), got {margin}")
    problems: list[tuple[str, str]] = []
    names: dict[int, str] = {}
    if (root / ANNOTATION_DEFINITIONS).is_file():
        try:
            names = label_names(_read_json(root / ANNOTATION_DEFINITIONS))
        except (OSError, ValueError) as error:
            problems.append((ANNOTATION_DEFINITIONS, f"unreadable JSON: {error}"))
    samples: list[SoloSample] = []
    by_rule: Counter[str] = Counter()
    for folder in sequence_folders(root):
        for frame_file in sorted(folder.glob(f"*{FRAME_SUFFIX}")):
            where = frame_file.relative_to(root).as_posix()
            try:
                frame = _read_json(frame_file)
            except (OSError, ValueError) as error:
                problems.append((where, f"unreadable JSON: {error}"))
                continue
            captures, bad = parse_frame(frame, names)
            problems += [(where, reason) for reason in bad]
            if not captures:
                by_rule["frame(s) without a camera image"] += 1
            for capture in captures:
                image = folder / capture.filename
                found = _usable_boxes(image, capture, image_size)
                if isinstance(found, str):
                    problems.append((image.relative_to(root).as_posix(), found))
                    continue
                (width, height), boxes, outside = found
                problems += [(where, reason) for reason in outside]
                if not boxes:
                    by_rule["frame(s) without a labelled 2D box"] += 1
                elif mode == "frames":
                    samples.append(SoloSample(image, dominant_label(boxes), None, folder.name, where))
                else:
                    for box in boxes:
                        if min(box.width, box.height) < min_side:
                            by_rule[f"{box.label!r} box(es) under {min_side} px on a side"] += 1
                        else:
                            crop = box_crop(box, width, height, margin)
                            samples.append(SoloSample(image, box.label, crop, folder.name, where))
    problems += [(f"{SEQUENCE_GLOB}/*{FRAME_SUFFIX}", f"{n} {what}") for what, n in sorted(by_rule.items())]
    return samples, problems


def _usable_boxes(
    image: Path, capture: CaptureRecord, image_size: Callable[[Path], tuple[int, int]]
) -> str | tuple[tuple[int, int], list[Box], list[str]]:
    """(image size, the boxes clipped to the image, problems with boxes outside it), or why the image
    cannot be used."""
    if not image.is_file():
        return "file missing"
    try:
        width, height = image_size(image)
    except Exception as error:  # any failure to read or decode means: skip this image
        return f"{type(error).__name__}: {error}"
    if capture.size is not None and capture.size != (width, height):
        declared = f"{capture.size[0]}x{capture.size[1]}"
        return f"is {width}x{height} but its frame_data.json says {declared}: boxes would not match"
    boxes: list[Box] = []
    outside: list[str] = []
    for box in capture.boxes:
        inside = clip_box(box, width, height)
        if inside is None:
            outside.append(
                f"{capture.filename}: {box.label} box at ({box.left:g}, {box.top:g}) size "
                f"{box.width:g}x{box.height:g} lies outside the {width}x{height} image"
            )
        else:
            boxes.append(inside)
    return (width, height), boxes, outside


# --- the split --------------------------------------------------------------------------------------


def split_by_sequence(
    samples: list[SoloSample], val_fraction: float, seed: int
) -> tuple[list[SoloSample], list[SoloSample]]:
    """(train, val) with every sequence wholly on one side. A sequence is one scenario iteration: its
    steps are consecutive, near-identical renders, and a frame's boxes share one image, so splitting
    below the sequence would validate on what training has seen. Sequences are taken in a seeded order
    while each brings val closer to fraction x samples (the first is always taken when the fraction is
    above 0), skipping any that would take a class's last training samples. A dataset of one sequence is
    split by frame instead: that is the only split it has."""
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    by_sequence = len({s.sequence for s in samples}) > 1
    groups: dict[str, list[SoloSample]] = {}
    for sample in samples:
        groups.setdefault(sample.sequence if by_sequence else sample.frame, []).append(sample)
    order = sorted(groups)
    random.Random(f"{seed}:solo").shuffle(order)
    target = val_fraction * len(samples)
    left_for_training = Counter(s.label for s in samples)
    val_groups: set[str] = set()
    taken = 0
    for name in order if val_fraction > 0 else []:
        members = groups[name]
        if val_groups and taken + len(members) / 2 > target:
            continue  # val would end further from the target with this sequence than without it
        needed = Counter(s.label for s in members)
        if any(left_for_training[label] <= count for label, count in needed.items()):
            continue
        left_for_training -= needed
        val_groups.add(name)
        taken += len(members)
    train = [s for name in sorted(groups) if name not in val_groups for s in groups[name]]
    val = [s for name in sorted(groups) if name in val_groups for s in groups[name]]
    return train, val
