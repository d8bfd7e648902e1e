"""Writer and reader of the capture-session format shared by the Unity recorder, vr-sim and train-vr.

The format is defined in docs/capture-format.md; this module is its reference implementation. It is pure
Python (json + pathlib, and the pure-Python wire protocol for the head pose type) so that every producer and
consumer can use it without pulling in torch, numpy or Panda3D, and it never opens images: checking pixels
is the trainer's job, checking records is ours.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from vr_recognition.server.protocol import Pose

FORMAT_NAME = "vr-capture-session"
FORMAT_VERSION = 1
SESSION_FILE = "session.json"
FRAMES_FILE = "frames.jsonl"
FRAMES_DIR = "frames"
SPLITS = ("train", "val")
# A unit quaternion written with float32 precision (Unity) is within this of length 1.
QUATERNION_NORM_TOLERANCE = 1e-3


class CaptureFormatError(ValueError):
    """A session folder or one of its records does not follow docs/capture-format.md."""


@dataclass(frozen=True)
class FrameRecord:
    """One line of frames.jsonl."""

    image: str  # path relative to the session folder, forward slashes
    label: str
    timestamp_s: float  # seconds since the session's `created` time
    # Head (camera) pose, the wire protocol's type: Unity world coordinates (metres, left-handed, y up,
    # z forward); rotation is a unit quaternion x, y, z, w rotating head-local axes to world.
    pose: Pose | None = None
    gaze: tuple[float, float] | None = None  # normalised (u, v), origin top-left, v grows downwards
    split: str | None = None  # "train", "val" or None (the trainer decides)

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"image": self.image, "label": self.label, "timestamp_s": self.timestamp_s}
        if self.split is not None:
            record["split"] = self.split
        if self.pose is not None:
            record["pose"] = self.pose.to_json()
        if self.gaze is not None:
            record["gaze"] = list(self.gaze)
        return record


@dataclass(frozen=True)
class SessionInfo:
    """The contents of session.json."""

    source: str
    width: int
    height: int
    vertical_fov_deg: float
    classes: tuple[str, ...]
    created: str = field(default_factory=lambda: utc_now_iso())
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "source": self.source,
            "created": self.created,
            "image": {"width": self.width, "height": self.height},
            "camera": {"vertical_fov_deg": self.vertical_fov_deg},
            "classes": list(self.classes),
            "notes": self.notes,
            "extra": self.extra,
        }


@dataclass(frozen=True)
class Session:
    """A validated session: its folder, header and frame records (images are not opened)."""

    root: Path
    info: SessionInfo
    frames: tuple[FrameRecord, ...]

    def image_path(self, frame: FrameRecord) -> Path:
        return self.root.joinpath(*PurePosixPath(frame.image).parts)


def utc_now_iso() -> str:
    """Current UTC time as ISO 8601 with a trailing Z, the form session.json uses."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def frame_image_name(index: int) -> str:
    """Conventional relative image path for the index-th frame (frames/000123.jpg)."""
    return f"{FRAMES_DIR}/{index:06d}.jpg"


class SessionWriter:
    """Writes one session folder: session.json up front, then frames.jsonl one line per add_frame().

    Use as a context manager. Images are written by the caller at `session_dir / record.image`
    (`image_path_for()` creates the folder); a record is validated before it is written, so a writer
    bug fails at once instead of at training time.
    """

    def __init__(self, session_dir: str | Path, info: SessionInfo) -> None:
        self.session_dir = Path(session_dir)
        self.info = info
        _validate_info(info.to_json(), self.session_dir / SESSION_FILE)
        self.session_dir.mkdir(parents=True, exist_ok=True)
        existing = self.session_dir / FRAMES_FILE
        if existing.exists():
            raise CaptureFormatError(f"{existing}: session already exists; write to a new folder")
        (self.session_dir / SESSION_FILE).write_text(json.dumps(info.to_json(), indent=2) + "\n")
        self._frames_file = existing.open("w", encoding="utf-8", newline="\n")
        self._classes = frozenset(info.classes)
        self._images: set[str] = set()
        self._line = 0

    def image_path_for(self, relative: str) -> Path:
        """Absolute path where the image for `relative` goes; its folder is created."""
        path = self.session_dir.joinpath(*PurePosixPath(relative).parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add_frame(self, record: FrameRecord) -> None:
        self._line += 1
        payload = record.to_json()
        _parse_frame(payload, self._classes, f"{self.session_dir / FRAMES_FILE}:{self._line}")
        if record.image in self._images:
            raise CaptureFormatError(f"{self.session_dir / FRAMES_FILE}:{self._line}: duplicate image")
        self._images.add(record.image)
        self._frames_file.write(json.dumps(payload, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._frames_file.close()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_session(session_dir: str | Path) -> Session:
    """Read and validate one session folder; raises CaptureFormatError naming the file and line."""
    root = Path(session_dir)
    header_path = root / SESSION_FILE
    try:
        header = json.loads(header_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaptureFormatError(f"{header_path}: missing (not a capture session folder)") from None
    except json.JSONDecodeError as error:
        raise CaptureFormatError(f"{header_path}:{error.lineno}: invalid JSON: {error.msg}") from None
    info = _validate_info(header, header_path)
    frames_path = root / FRAMES_FILE
    if not frames_path.is_file():
        raise CaptureFormatError(f"{frames_path}: missing")
    classes = frozenset(info.classes)
    frames: list[FrameRecord] = []
    seen: dict[str, int] = {}
    with frames_path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{frames_path}:{number}"
            try:
                payload = json.loads(line)
            except json.JSONDecodeError as error:
                raise CaptureFormatError(f"{where}: invalid JSON: {error.msg}") from None
            record = _parse_frame(payload, classes, where)
            if record.image in seen:
                raise CaptureFormatError(
                    f"{where}: image {record.image!r} already used on line {seen[record.image]}"
                )
            seen[record.image] = number
            frames.append(record)
    return Session(root=root, info=info, frames=tuple(frames))


def find_sessions(dataset_root: str | Path) -> list[Path]:
    """Session folders under a dataset root (the root itself counts), sorted for a stable order."""
    root = Path(dataset_root)
    if (root / SESSION_FILE).is_file():
        return [root]
    sessions = sorted(path.parent for path in root.rglob(SESSION_FILE))
    if not sessions:
        raise CaptureFormatError(f"{root}: no {SESSION_FILE} found (not a capture dataset)")
    return sessions


def read_dataset(dataset_root: str | Path) -> list[Session]:
    """Every session under a dataset root, validated."""
    return [read_session(path) for path in find_sessions(dataset_root)]


# --- validation -------------------------------------------------------------------------------------


def _validate_info(header: Any, where: Path) -> SessionInfo:
    if not isinstance(header, dict):
        raise CaptureFormatError(f"{where}: expected a JSON object")
    if header.get("format") != FORMAT_NAME:
        raise CaptureFormatError(f"{where}: 'format' must be {FORMAT_NAME!r}, got {header.get('format')!r}")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CaptureFormatError(f"{where}: 'version' must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CaptureFormatError(
            f"{where}: format version {version} is newer than this reader ({FORMAT_VERSION}); upgrade"
        )
    source = _require(header, "source", str, where)
    created = _require(header, "created", str, where)
    try:
        _dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        raise CaptureFormatError(f"{where}: 'created' is not an ISO 8601 time: {created!r}") from None
    image = _require(header, "image", dict, where)
    width = _require(image, "width", int, where, "image.width")
    height = _require(image, "height", int, where, "image.height")
    if width <= 0 or height <= 0:
        raise CaptureFormatError(f"{where}: image size must be positive, got {width}x{height}")
    camera = _require(header, "camera", dict, where)
    fov = _number(camera.get("vertical_fov_deg"), where, "camera.vertical_fov_deg")
    if not 0 < fov < 180:
        raise CaptureFormatError(f"{where}: camera.vertical_fov_deg must be in (0, 180), got {fov}")
    classes = _require(header, "classes", list, where)
    if not classes or not all(isinstance(name, str) and name for name in classes):
        raise CaptureFormatError(f"{where}: 'classes' must be a non-empty list of non-empty strings")
    if len(set(classes)) != len(classes):
        raise CaptureFormatError(f"{where}: 'classes' has duplicates")
    notes = header.get("notes", "")
    if not isinstance(notes, str):
        raise CaptureFormatError(f"{where}: 'notes' must be a string")
    extra = header.get("extra", {})
    if not isinstance(extra, dict):
        raise CaptureFormatError(f"{where}: 'extra' must be an object")
    return SessionInfo(
        source=source,
        created=created,
        width=width,
        height=height,
        vertical_fov_deg=fov,
        classes=tuple(classes),
        notes=notes,
        extra=extra,
    )


def _parse_frame(payload: Any, classes: frozenset[str], where: str) -> FrameRecord:
    if not isinstance(payload, dict):
        raise CaptureFormatError(f"{where}: expected a JSON object per line")
    image = payload.get("image")
    if not isinstance(image, str) or not image:
        raise CaptureFormatError(f"{where}: missing or empty 'image' (relative path of the frame's JPEG)")
    _check_relative_path(image, where)
    label = payload.get("label")
    if not isinstance(label, str):
        raise CaptureFormatError(f"{where}: missing 'label'")
    if label not in classes:
        raise CaptureFormatError(
            f"{where}: label {label!r} is not one of the session's classes {sorted(classes)}"
        )
    if "timestamp_s" not in payload:
        raise CaptureFormatError(f"{where}: missing 'timestamp_s'")
    timestamp = _number(payload["timestamp_s"], where, "timestamp_s")
    if timestamp < 0:
        raise CaptureFormatError(f"{where}: 'timestamp_s' must be >= 0, got {timestamp}")
    split = payload.get("split")
    if split is not None and split not in SPLITS:
        raise CaptureFormatError(f"{where}: 'split' must be one of {SPLITS} or absent, got {split!r}")
    pose = None
    if payload.get("pose") is not None:
        pose = _parse_pose(payload["pose"], where)
    gaze = None
    if payload.get("gaze") is not None:
        u, v = _numbers(payload["gaze"], 2, where, "gaze")
        if not (0.0 <= u <= 1.0 and 0.0 <= v <= 1.0):
            raise CaptureFormatError(f"{where}: 'gaze' must lie in [0, 1] x [0, 1], got {[u, v]}")
        gaze = (u, v)
    return FrameRecord(image=image, label=label, timestamp_s=timestamp, pose=pose, gaze=gaze, split=split)


def _parse_pose(pose: Any, where: str) -> Pose:
    if not isinstance(pose, dict):
        raise CaptureFormatError(f"{where}: 'pose' must be an object with 'position' and 'rotation'")
    position = _numbers(pose.get("position"), 3, where, "pose.position")
    rotation = _numbers(pose.get("rotation"), 4, where, "pose.rotation")
    norm = math.sqrt(sum(component * component for component in rotation))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise CaptureFormatError(
            f"{where}: 'pose.rotation' must be a unit quaternion (x, y, z, w), norm {norm}"
        )
    return Pose(position=position, rotation=rotation)  # type: ignore[arg-type]


def _check_relative_path(image: str, where: str) -> None:
    path = PurePosixPath(image)
    if "\\" in image or path.is_absolute() or ".." in path.parts or ":" in image:
        raise CaptureFormatError(
            f"{where}: 'image' must be a relative path with forward slashes inside the session, got {image!r}"
        )


def _require(container: dict, key: str, kind: type, where: Path, name: str | None = None) -> Any:
    value = container.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CaptureFormatError(f"{where}: '{name or key}' must be a {kind.__name__}, got {value!r}")
    return value


def _number(value: Any, where: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CaptureFormatError(f"{where}: '{name}' must be a finite number, got {value!r}")
    return float(value)


def _numbers(value: Any, count: int, where: str, name: str) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != count:
        raise CaptureFormatError(f"{where}: '{name}' must be a list of {count} numbers, got {value!r}")
    return tuple(_number(item, where, f"{name}[{index}]") for index, item in enumerate(value))
