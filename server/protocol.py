"""Wire protocol v1 as pure functions: bytes and strings in, values out, no I/O.

Server, Python client, benchmark and tests all share this one codec (the C# client mirrors it and
reads the same golden vectors), so the protocol can be tested without sockets and cannot drift
between peers. docs/protocol.md is the normative description; this module implements it.

Two kinds of websocket message:
- binary: a frame (fixed little-endian header, then the image payload), client to server only;
- text: one JSON object with a "type" field, both directions.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from enum import Enum, IntEnum, IntFlag
from typing import Any

MAGIC = b"VRFR"
PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)

# magic, version, msg_type, header_len, flags, frame_id, capture_time_us, position xyz,
# rotation xyzw, gaze uv, image_format, reserved, width, height, reserved, payload_len
HEADER_STRUCT = struct.Struct("<4sBBHIIQ3f4f2fBBHHHI")
HEADER_SIZE = HEADER_STRUCT.size  # 72 in v1; a later minor revision may append fields
MAX_JSON_SAFE_INT = 2**53 - 1  # largest integer every JSON parser (JavaScript too) keeps exactly
MAX_U32 = 2**32 - 1

DEFAULT_MAX_CONTROL_BYTES = 64 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 16 * 2**20  # a websocket message (frame or JSON); limits.max_message_bytes
# The server's defaults when neither its command line nor the client's hello says otherwise.
DEFAULT_PORT = 8765
DEFAULT_BUDGET_MS = 11.1  # one frame of a 90 Hz display
DEFAULT_TOP_K = 5
MAX_JSON_DEPTH = 32


class MessageType(IntEnum):
    """Binary message types (header byte 5)."""

    FRAME = 1


class ImageFormat(IntEnum):
    """Payload encodings (header byte 60). Raw formats are 8-bit, row-major, rows tightly packed."""

    JPEG = 1
    RGB8 = 2
    RGBA8 = 3

    @property
    def wire_name(self) -> str:
        return self.name.lower()

    @property
    def channels(self) -> int | None:
        """Bytes per pixel for raw formats, None for compressed ones."""
        return {ImageFormat.RGB8: 3, ImageFormat.RGBA8: 4}.get(self)


class FrameFlags(IntFlag):
    """Header flags. Bits 0-15 must be understood (unknown ones are rejected); 16-31 may be ignored."""

    HAS_POSE = 1 << 0
    HAS_GAZE = 1 << 1
    ROWS_BOTTOM_UP = 1 << 2  # first payload row is the image's bottom row (GPU readback order)


KNOWN_FLAGS = FrameFlags.HAS_POSE | FrameFlags.HAS_GAZE | FrameFlags.ROWS_BOTTOM_UP
MUST_UNDERSTAND_MASK = 0xFFFF


class Status(str, Enum):
    """What happened to a frame; every frame whose header parsed gets exactly one result."""

    OK = "ok"
    DROPPED_STALE = "dropped_stale"  # a newer frame of the same stream replaced it before processing
    LATE = "late"  # its deadline (arrival + budget_ms) passed before inference
    ERROR = "error"  # see the result's "error" object


class ErrorCode(str, Enum):
    """The closed list of error codes. Clients must treat a code they do not know as a generic error."""

    # binary frame structure
    TRUNCATED_HEADER = "truncated_header"
    BAD_MAGIC = "bad_magic"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"
    BAD_HEADER = "bad_header"
    LENGTH_MISMATCH = "length_mismatch"
    EMPTY_PAYLOAD = "empty_payload"
    UNSUPPORTED_FORMAT = "unsupported_format"
    BAD_DIMENSIONS = "bad_dimensions"
    # image content
    IMAGE_TOO_LARGE = "image_too_large"
    CORRUPT_IMAGE = "corrupt_image"
    # control messages
    MESSAGE_TOO_LARGE = "message_too_large"
    BAD_JSON = "bad_json"
    INVALID_MESSAGE = "invalid_message"
    HELLO_REQUIRED = "hello_required"
    DUPLICATE_HELLO = "duplicate_hello"
    # connection and server
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    TOO_MANY_STREAMS = "too_many_streams"
    SLOW_CONSUMER = "slow_consumer"
    MODEL_UNAVAILABLE = "model_unavailable"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL_ERROR = "internal_error"


class CloseCode(IntEnum):
    """Websocket close codes the server sends (RFC 6455 section 7.4.1); the reason is an ErrorCode.

    Only codes every target client can receive: Mono's ClientWebSocket (Unity) aborts on 1012-1014
    without completing the close handshake, so "try again later" is the application code 4013."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down: reconnect (to another replica) with backoff
    PROTOCOL_ERROR = 1002  # no common protocol version
    INVALID_DATA = 1007  # a text message that is not UTF-8 (RFC 6455 8.1 requires failing)
    POLICY_VIOLATION = 1008  # no hello in time, or a slow consumer
    MESSAGE_TOO_BIG = 1009  # over limits.max_message_bytes
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 4013  # refused at hello: too many streams, or stopping; reconnect with backoff


# The reason the server gives for each close the websocket library makes on its own.
LIBRARY_CLOSE_REASONS = {
    CloseCode.INVALID_DATA: "bad_json",
    CloseCode.MESSAGE_TOO_BIG: "message_too_large",
}


class ProtocolError(ValueError):
    """A message broke the protocol. Carries the frame id and capture time when they were readable."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        frame_id: int | None = None,
        capture_time_us: int | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.frame_id = frame_id
        self.capture_time_us = capture_time_us


# ---------------------------------------------------------------------------------------------
# Binary frames
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pose:
    """Head pose in the client's world frame: metres, unit quaternion (x, y, z, w). Echoed, not used."""

    position: tuple[float, float, float]
    rotation: tuple[float, float, float, float]

    def to_json(self) -> dict[str, list[float]]:
        return {"position": list(self.position), "rotation": list(self.rotation)}


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded binary frame. `payload` is a zero-copy view into the received message."""

    frame_id: int
    capture_time_us: int
    image_format: ImageFormat
    width: int
    height: int
    payload: bytes | memoryview
    pose: Pose | None = None
    gaze: tuple[float, float] | None = None  # normalised (u, v), origin at the image's top-left
    rows_bottom_up: bool = False


def encode_frame(frame: Frame) -> bytes:
    """Header plus payload, ready for one binary websocket message."""
    flags = 0
    position, rotation, gaze = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0), (0.0, 0.0)
    if frame.pose is not None:
        flags |= FrameFlags.HAS_POSE
        position, rotation = frame.pose.position, frame.pose.rotation
    if frame.gaze is not None:
        flags |= FrameFlags.HAS_GAZE
        gaze = frame.gaze
    if frame.rows_bottom_up:
        flags |= FrameFlags.ROWS_BOTTOM_UP
    try:
        header = HEADER_STRUCT.pack(
            MAGIC,
            PROTOCOL_VERSION,
            MessageType.FRAME,
            HEADER_SIZE,
            int(flags),
            frame.frame_id,
            frame.capture_time_us,
            *position,
            *rotation,
            *gaze,
            int(frame.image_format),
            0,
            frame.width,
            frame.height,
            0,
            len(frame.payload),
        )
    except struct.error as exc:
        raise ValueError(f"frame field out of range: {exc}") from None
    message = b"".join((header, frame.payload))
    decode_frame(message)  # the encoder never emits what a decoder would reject
    return message


def decode_frame(data: bytes | bytearray | memoryview) -> Frame:
    """Parse one binary message; raise ProtocolError with the first rule it breaks (docs order)."""
    view = memoryview(data)
    size = len(view)
    if size < 4:
        raise ProtocolError(ErrorCode.TRUNCATED_HEADER, f"message is {size} bytes, shorter than the magic")
    if bytes(view[:4]) != MAGIC:
        raise ProtocolError(ErrorCode.BAD_MAGIC, f"magic is {bytes(view[:4])!r}, expected {MAGIC!r}")
    if size < 8:
        raise ProtocolError(
            ErrorCode.TRUNCATED_HEADER, f"message is {size} bytes, header needs {HEADER_SIZE}"
        )
    version, msg_type, header_len = view[4], view[5], int.from_bytes(view[6:8], "little")
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"frame version {version}; this server speaks {list(SUPPORTED_VERSIONS)}",
        )
    if msg_type != MessageType.FRAME:
        raise ProtocolError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"binary message type {msg_type} is unknown")
    if header_len < HEADER_SIZE:
        raise ProtocolError(ErrorCode.BAD_HEADER, f"header_len {header_len} < {HEADER_SIZE}")
    if size < header_len:
        raise ProtocolError(
            ErrorCode.TRUNCATED_HEADER, f"message is {size} bytes, header_len says {header_len}"
        )
    (_, _, _, _, flags, frame_id, capture_time_us, px, py, pz, qx, qy, qz, qw, gu, gv, fmt, _, width,
     height, _, payload_len) = HEADER_STRUCT.unpack_from(view)  # fmt: skip
    ids = {"frame_id": frame_id, "capture_time_us": capture_time_us}

    def fail(code: ErrorCode, message: str) -> ProtocolError:
        return ProtocolError(code, message, **ids)

    if capture_time_us > MAX_JSON_SAFE_INT:
        ids["capture_time_us"] = None
        raise fail(ErrorCode.BAD_HEADER, "capture_time_us must be below 2**53 so JSON echoes it exactly")
    if payload_len != size - header_len:
        raise fail(
            ErrorCode.LENGTH_MISMATCH,
            f"payload_len {payload_len} but {size - header_len} bytes follow the header",
        )
    if payload_len == 0:
        raise fail(ErrorCode.EMPTY_PAYLOAD, "frame has no image bytes")
    unknown = flags & MUST_UNDERSTAND_MASK & ~int(KNOWN_FLAGS)
    if unknown:
        raise fail(ErrorCode.BAD_HEADER, f"unknown must-understand flag bits 0x{unknown:04x}")
    try:
        image_format = ImageFormat(fmt)
    except ValueError:
        raise fail(ErrorCode.UNSUPPORTED_FORMAT, f"image format {fmt} is unknown") from None
    if width == 0 or height == 0:
        raise fail(ErrorCode.BAD_DIMENSIONS, f"declared size {width}x{height} is empty")
    channels = image_format.channels
    if channels is not None and payload_len != width * height * channels:
        raise fail(
            ErrorCode.BAD_DIMENSIONS,
            f"{image_format.wire_name} {width}x{height} needs {width * height * channels} bytes, "
            f"got {payload_len}",
        )
    pose = None
    if flags & FrameFlags.HAS_POSE:
        values = (px, py, pz, qx, qy, qz, qw)
        if not all(math.isfinite(v) for v in values):
            raise fail(ErrorCode.BAD_HEADER, "pose has a non-finite value")
        pose = Pose((px, py, pz), (qx, qy, qz, qw))
    gaze = None
    if flags & FrameFlags.HAS_GAZE:
        if not (0.0 <= gu <= 1.0 and 0.0 <= gv <= 1.0):  # also rejects NaN
            raise fail(ErrorCode.BAD_HEADER, f"gaze ({gu}, {gv}) is outside [0, 1]")
        gaze = (gu, gv)
    return Frame(
        frame_id=frame_id,
        capture_time_us=capture_time_us,
        image_format=image_format,
        width=width,
        height=height,
        payload=view[header_len:],
        pose=pose,
        gaze=gaze,
        rows_bottom_up=bool(flags & FrameFlags.ROWS_BOTTOM_UP),
    )


# ---------------------------------------------------------------------------------------------
# JSON messages: shared helpers
# ---------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any) -> int:
    """Nesting depth; also refuses lone UTF-16 surrogates (legal as JSON escapes like "\\ud800", but not
    encodable as UTF-8, so a string holding one could never be echoed back)."""
    if isinstance(value, dict):
        for key in value:
            _check_text(key)
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, str):
        _check_text(value)
    return 0


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(ErrorCode.BAD_JSON, "string with a lone UTF-16 surrogate") from None


def parse_json_object(text: str | bytes, max_bytes: int = DEFAULT_MAX_CONTROL_BYTES) -> dict[str, Any]:
    """Strict JSON: size and depth capped, NaN/Infinity refused, top level an object with a string type."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if len(raw) > max_bytes:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE, f"JSON message is {len(raw)} bytes, limit {max_bytes}"
        )
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(value, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, "a JSON message must be an object")
    try:
        depth = _depth(value)
    except RecursionError:
        depth = MAX_JSON_DEPTH + 1
    if depth > MAX_JSON_DEPTH:
        raise ProtocolError(ErrorCode.BAD_JSON, f"JSON nesting deeper than {MAX_JSON_DEPTH}")
    if not isinstance(value.get("type"), str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, 'JSON message needs a string "type"')
    return value


def dump_json(message: dict[str, Any]) -> str:
    """Compact, deterministic JSON (the golden vectors depend on it)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _invalid(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_MESSAGE, message)


def _get_number(
    obj: dict[str, Any], key: str, lo: float, hi: float, *, integer: bool = False, default: Any = None
) -> Any:
    value = obj.get(key, default)
    if value is None:
        return default
    ok_type = isinstance(value, int) if integer else _is_number(value)
    if isinstance(value, bool) or not ok_type or not (lo <= value <= hi):
        kind = "an integer" if integer else "a number"
        raise _invalid(f'"{key}" must be {kind} in [{lo}, {hi}], got {value!r}')
    return value


def _is_number(value: Any) -> bool:
    """A JSON number that converts to a float: an integer past 1.8e308 does not (OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _get_str(obj: dict[str, Any], key: str, max_len: int = 256, default: str | None = None) -> str | None:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > max_len:
        raise _invalid(f'"{key}" must be a string of at most {max_len} characters')
    return value


def _get_object(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, dict):
        raise _invalid(f'"{key}" must be an object or null')
    return value


# ---------------------------------------------------------------------------------------------
# Client to server
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Per-stream options a client asks for in hello/configure; None means "server default"."""

    top_k: int | None = None
    budget_ms: float | None = None
    fps: float | None = None
    smoothing_ema_alpha: float | None = None  # weight of the newest frame's scores; None = off
    gaze_crop_scale: float | None = None  # crop side as a fraction of the shorter side; None = off
    # Fields the client sent as JSON null: in configure, "back to the server's default" (for smoothing
    # and gaze crop the default is off); in hello the same as absent. Named by wire key.
    reset: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.top_k is not None:
            out["top_k"] = self.top_k
        if self.budget_ms is not None:
            out["budget_ms"] = self.budget_ms
        if self.fps is not None:
            out["fps"] = self.fps
        if self.smoothing_ema_alpha is not None:
            out["smoothing"] = {"ema_alpha": self.smoothing_ema_alpha}
        if self.gaze_crop_scale is not None:
            out["gaze_crop"] = {"scale": self.gaze_crop_scale}
        for key in SETTING_KEYS:
            if key in self.reset and key not in out:
                out[key] = None
        return out

    @staticmethod
    def from_json(obj: dict[str, Any]) -> StreamSettings:
        smoothing = _get_object(obj, "smoothing")
        gaze_crop = _get_object(obj, "gaze_crop")
        alpha = _get_number(smoothing, "ema_alpha", 0.0, 1.0) if smoothing is not None else None
        if smoothing is not None and (alpha is None or alpha <= 0.0):
            raise _invalid('"smoothing.ema_alpha" must be a number in (0, 1]')
        scale = _get_number(gaze_crop, "scale", 0.0, 1.0) if gaze_crop is not None else None
        if gaze_crop is not None and (scale is None or scale <= 0.0):
            raise _invalid('"gaze_crop.scale" must be a number in (0, 1]')
        budget = _get_number(obj, "budget_ms", 0.0, 60_000.0)
        if budget is not None and budget <= 0:
            raise _invalid('"budget_ms" must be positive')
        fps = _get_number(obj, "fps", 0.0, 1000.0)
        if fps is not None and fps <= 0:
            raise _invalid('"fps" must be positive')
        return StreamSettings(
            top_k=_get_number(obj, "top_k", 1, MAX_JSON_SAFE_INT, integer=True),  # clamped by the server
            budget_ms=None if budget is None else float(budget),
            fps=None if fps is None else float(fps),
            smoothing_ema_alpha=None if alpha is None else float(alpha),
            gaze_crop_scale=None if scale is None else float(scale),
            reset=frozenset(key for key in SETTING_KEYS if key in obj and obj[key] is None),
        )


# The settings' wire keys, in the order they are written; StreamSettings field for each.
SETTING_KEYS = ("top_k", "budget_ms", "fps", "smoothing", "gaze_crop")
SETTING_FIELDS = {
    "top_k": "top_k",
    "budget_ms": "budget_ms",
    "fps": "fps",
    "smoothing": "smoothing_ema_alpha",
    "gaze_crop": "gaze_crop_scale",
}


@dataclass(frozen=True, slots=True)
class ClientHello:
    """First message of every connection: who the client is and what it wants."""

    protocol: int = PROTOCOL_VERSION  # newest version the client speaks
    min_protocol: int | None = None  # oldest it accepts; None = same as protocol
    client_name: str = "unknown"
    client_version: str = ""
    settings: StreamSettings = field(default_factory=StreamSettings)


@dataclass(frozen=True, slots=True)
class Configure:
    """Change stream settings mid-stream (e.g. a new budget when the headset changes refresh rate)."""

    settings: StreamSettings


@dataclass(frozen=True, slots=True)
class Ping:
    """Application-level round trip, for clients whose websocket API hides ping frames."""

    id: int | str
    client_time_us: int | None = None


ClientMessage = ClientHello | Configure | Ping


def encode_client_message(message: ClientMessage) -> str:
    if isinstance(message, ClientHello):
        out: dict[str, Any] = {"type": "hello", "protocol": message.protocol}
        if message.min_protocol is not None:
            out["min_protocol"] = message.min_protocol
        out["client"] = {"name": message.client_name, "version": message.client_version}
        out.update(message.settings.to_json())
    elif isinstance(message, Configure):
        out = {"type": "configure", **message.settings.to_json()}
    elif isinstance(message, Ping):
        out = {"type": "ping", "id": message.id}
        if message.client_time_us is not None:
            out["client_time_us"] = message.client_time_us
    else:
        raise TypeError(f"not a client message: {message!r}")
    return dump_json(out)


def decode_client_message(text: str | bytes, max_bytes: int = DEFAULT_MAX_CONTROL_BYTES) -> ClientMessage:
    obj = parse_json_object(text, max_bytes)
    kind = obj["type"]
    if kind == "hello":
        protocol = _get_number(obj, "protocol", 1, 255, integer=True)
        if protocol is None:
            raise _invalid('hello needs "protocol"')
        # min_protocol above protocol is not malformed: no version satisfies it, so negotiation fails
        min_protocol = _get_number(obj, "min_protocol", 1, 255, integer=True)
        client = _get_object(obj, "client") or {}
        return ClientHello(
            protocol=protocol,
            min_protocol=min_protocol,
            client_name=_get_str(client, "name", default="unknown"),
            client_version=_get_str(client, "version", default=""),
            settings=StreamSettings.from_json(obj),
        )
    if kind == "configure":
        return Configure(StreamSettings.from_json(obj))
    if kind == "ping":
        ping_id = obj.get("id")
        if isinstance(ping_id, bool) or not isinstance(ping_id, (int, str)):
            raise _invalid('ping needs an integer or string "id"')
        if isinstance(ping_id, str) and len(ping_id) > 64:
            raise _invalid('ping "id" longer than 64 characters')
        if isinstance(ping_id, int) and abs(ping_id) > MAX_JSON_SAFE_INT:
            raise _invalid('ping "id" must fit in 53 bits')
        return Ping(ping_id, _get_number(obj, "client_time_us", 0, MAX_JSON_SAFE_INT, integer=True))
    raise ProtocolError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f'JSON message type "{kind[:40]}" is unknown')


def negotiate_version(hello: ClientHello, supported: tuple[int, ...] = SUPPORTED_VERSIONS) -> int:
    """The newest version both sides speak, or UNSUPPORTED_VERSION (then the server closes with 1002)."""
    lowest = hello.min_protocol if hello.min_protocol is not None else hello.protocol
    common = [v for v in supported if lowest <= v <= hello.protocol]
    if not common:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"client speaks {lowest}..{hello.protocol}, server speaks {list(supported)}",
        )
    return max(common)


def gaze_crop_rect(width: int, height: int, u: float, v: float, scale: float) -> tuple[int, int, int]:
    """(left, top, side) of the gaze crop in the frame's own pixel grid (docs/protocol.md 3.1).

    A square of side scale * min(width, height) centred on the gaze point (u, v in [0, 1], origin at
    the top-left of the upright image), shifted to stay inside the frame. Rounding is half up
    (floor(x + 0.5)) so that every client computes the same pixels (tests/vectors/gaze_crop_rect.json).
    """
    side = max(1, math.floor(scale * min(width, height) + 0.5))
    left = min(max(math.floor(u * width - side / 2 + 0.5), 0), width - side)
    top = min(max(math.floor(v * height - side / 2 + 0.5), 0), height - side)
    return left, top, side


# ---------------------------------------------------------------------------------------------
# Server to client
# ---------------------------------------------------------------------------------------------


TIMING_STAGES = ("receive", "decode", "queue", "infer", "post", "total")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    version: str
    classes: tuple[str, ...]
    input_width: int
    input_height: int
    provider: str = ""  # the execution provider that really runs, e.g. "CUDAExecutionProvider"
    mapping: str = "centre_crop"  # how a frame becomes the input: "centre_crop" or "stretch" (v1.1)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "classes": list(self.classes),
            "input": {"width": self.input_width, "height": self.input_height, "mapping": self.mapping},
            "provider": self.provider,
        }

    @staticmethod
    def from_json(obj: Any) -> ModelInfo:
        if not isinstance(obj, dict):
            raise _invalid('"model" must be an object')
        classes = obj.get("classes")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise _invalid('"model.classes" must be a list of strings')
        size = _get_object(obj, "input") or {}
        return ModelInfo(
            name=_get_str(obj, "name", default=""),
            version=_get_str(obj, "version", default=""),
            classes=tuple(classes),
            input_width=_get_number(size, "width", 1, 65535, integer=True, default=0),
            input_height=_get_number(size, "height", 1, 65535, integer=True, default=0),
            provider=_get_str(obj, "provider", default=""),
            mapping=_get_str(size, "mapping", 32, default="centre_crop"),  # absent from v1 servers
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """What the server accepts; clients size their frames and settings from this."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_control_bytes: int = DEFAULT_MAX_CONTROL_BYTES
    max_width: int = 8192
    max_height: int = 8192
    max_pixels: int = 4096 * 4096
    max_top_k: int = 100
    formats: tuple[str, ...] = tuple(f.wire_name for f in ImageFormat)
    # Longer side over shorter side (v1.1). Without it a 8192x1 frame, tiny to send, would be scaled
    # to 2,097,152x256 pixels (1.6 GB) to reach the model's shorter side; within 4:1 no frame costs
    # more than a few 720p frames (docs/reliability.md). 32:9 super-wide views are 3.6:1.
    max_aspect_ratio: float = 4.0
    # A progressive JPEG must be decoded into a whole-image coefficient buffer, whatever scale it is
    # decoded at: a 4096x4096 one took 187 ms and 48 MB, against 38 ms and 1 MB baseline (v1.1).
    max_progressive_pixels: int = 1920 * 1080

    def to_json(self) -> dict[str, Any]:
        return {
            "max_message_bytes": self.max_message_bytes,
            "max_control_bytes": self.max_control_bytes,
            "max_width": self.max_width,
            "max_height": self.max_height,
            "max_pixels": self.max_pixels,
            "max_aspect_ratio": self.max_aspect_ratio,
            "max_progressive_pixels": self.max_progressive_pixels,
            "max_top_k": self.max_top_k,
            "formats": list(self.formats),
        }

    @staticmethod
    def from_json(obj: Any) -> Limits:
        if not isinstance(obj, dict):
            raise _invalid('"limits" must be an object')
        default = Limits()
        formats = obj.get("formats", list(default.formats))
        if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
            raise _invalid('"limits.formats" must be a list of strings')
        values = {
            key: _get_number(obj, key, 0, 2**63, integer=True, default=getattr(default, key))
            for key in (
                "max_message_bytes",
                "max_control_bytes",
                "max_width",
                "max_height",
                "max_pixels",
                "max_top_k",
                "max_progressive_pixels",
            )
        }
        aspect = _get_number(obj, "max_aspect_ratio", 1.0, 65535.0, default=default.max_aspect_ratio)
        return Limits(formats=tuple(formats), max_aspect_ratio=float(aspect), **values)


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """The settings the server actually applies to a stream, after defaults and clamping."""

    top_k: int
    budget_ms: float
    fps: float | None = None
    smoothing_ema_alpha: float | None = None
    gaze_crop_scale: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "top_k": self.top_k,
            "budget_ms": self.budget_ms,
            "fps": self.fps,
            "smoothing": None
            if self.smoothing_ema_alpha is None
            else {"ema_alpha": self.smoothing_ema_alpha},
            "gaze_crop": None if self.gaze_crop_scale is None else {"scale": self.gaze_crop_scale},
        }

    @staticmethod
    def from_json(obj: Any) -> EffectiveSettings:
        if not isinstance(obj, dict):
            raise _invalid('"session" must be an object')
        asked = StreamSettings.from_json(obj)
        if asked.top_k is None or asked.budget_ms is None:
            raise _invalid('"session" needs "top_k" and "budget_ms"')
        return EffectiveSettings(
            top_k=asked.top_k,
            budget_ms=asked.budget_ms,
            fps=asked.fps,
            smoothing_ema_alpha=asked.smoothing_ema_alpha,
            gaze_crop_scale=asked.gaze_crop_scale,
        )


@dataclass(frozen=True, slots=True)
class ServerHello:
    protocol: int
    server_name: str
    server_version: str
    model: ModelInfo
    session: EffectiveSettings
    limits: Limits


@dataclass(frozen=True, slots=True)
class Prediction:
    label: str
    index: int
    score: float


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    code: str  # an ErrorCode value; kept as str so unknown future codes still decode
    message: str


@dataclass(frozen=True, slots=True)
class Result:
    """The answer to one frame."""

    frame_id: int
    capture_time_us: int
    status: Status
    top_k: tuple[Prediction, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    pose: Pose | None = None
    gaze: tuple[float, float] | None = None
    model_version: str = ""
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """An error not tied to a decodable frame (bad magic, bad JSON, ...), or a fatal one before close."""

    code: str
    message: str
    frame_id: int | None = None
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class Pong:
    id: int | str
    client_time_us: int | None
    server_time_us: int


@dataclass(frozen=True, slots=True)
class Configured:
    session: EffectiveSettings


@dataclass(frozen=True, slots=True)
class ModelChanged:
    """Sent to every stream after a hot reload; results after it come from the new model."""

    model: ModelInfo


ServerMessage = ServerHello | Result | ErrorMessage | Pong | Configured | ModelChanged


def _result_to_json(result: Result) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "result",
        "frame_id": result.frame_id,
        "capture_time_us": result.capture_time_us,
        "status": result.status.value,
        "top_k": [{"label": p.label, "index": p.index, "score": round(p.score, 6)} for p in result.top_k],
        "timings_ms": {k: round(v, 3) for k, v in result.timings_ms.items()},
        "pose": None if result.pose is None else result.pose.to_json(),
        "gaze": None if result.gaze is None else list(result.gaze),
        "model_version": result.model_version,
    }
    if result.error is not None:
        out["error"] = {"code": result.error.code, "message": result.error.message}
    return out


def encode_server_message(message: ServerMessage) -> str:
    if isinstance(message, Result):
        return dump_json(_result_to_json(message))
    if isinstance(message, ServerHello):
        out: dict[str, Any] = {
            "type": "hello",
            "protocol": message.protocol,
            "server": {"name": message.server_name, "version": message.server_version},
            "model": message.model.to_json(),
            "session": message.session.to_json(),
            "limits": message.limits.to_json(),
        }
    elif isinstance(message, ErrorMessage):
        out = {
            "type": "error",
            "code": message.code,
            "message": message.message,
            "frame_id": message.frame_id,
            "fatal": message.fatal,
        }
    elif isinstance(message, Pong):
        out = {
            "type": "pong",
            "id": message.id,
            "client_time_us": message.client_time_us,
            "server_time_us": message.server_time_us,
        }
    elif isinstance(message, Configured):
        out = {"type": "configured", "session": message.session.to_json()}
    elif isinstance(message, ModelChanged):
        out = {"type": "model_changed", "model": message.model.to_json()}
    else:
        raise TypeError(f"not a server message: {message!r}")
    return dump_json(out)


def error_for(exc: ProtocolError) -> Result | ErrorMessage:
    """The reply to a rejected message: a per-frame result when the frame id was readable."""
    if exc.frame_id is not None and exc.capture_time_us is not None:
        return Result(
            frame_id=exc.frame_id,
            capture_time_us=exc.capture_time_us,
            status=Status.ERROR,
            error=ErrorInfo(exc.code.value, exc.message),
        )
    return ErrorMessage(exc.code.value, exc.message, frame_id=exc.frame_id)


def _decode_pose(value: Any) -> Pose | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid('"pose" must be an object or null')
    position, rotation = value.get("position"), value.get("rotation")
    if not (_is_numbers(position, 3) and _is_numbers(rotation, 4)):
        raise _invalid('"pose" needs 3 position and 4 rotation numbers')
    return Pose(tuple(float(v) for v in position), tuple(float(v) for v in rotation))


def _is_numbers(value: Any, n: int) -> bool:
    return isinstance(value, list) and len(value) == n and all(_is_number(v) for v in value)


def _decode_result(obj: dict[str, Any]) -> Result:
    try:
        status = Status(obj.get("status"))
    except ValueError:
        raise _invalid(f"unknown result status {obj.get('status')!r}") from None
    frame_id = _get_number(obj, "frame_id", 0, MAX_U32, integer=True)
    capture = _get_number(obj, "capture_time_us", 0, MAX_JSON_SAFE_INT, integer=True)
    if frame_id is None or capture is None:
        raise _invalid('result needs "frame_id" and "capture_time_us"')
    entries = obj.get("top_k")
    if entries is not None and not isinstance(entries, list):
        raise _invalid('"top_k" must be an array or null')
    top_k = []
    for entry in entries or []:
        if not isinstance(entry, dict):
            raise _invalid('"top_k" entries must be objects')
        label = _get_str(entry, "label")
        index = _get_number(entry, "index", 0, 2**31, integer=True)
        score = _get_number(entry, "score", -math.inf, math.inf)
        if label is None or index is None or score is None:
            raise _invalid('"top_k" entries need "label", "index" and "score"')
        top_k.append(Prediction(label, index, float(score)))
    timings = obj.get("timings_ms") or {}
    if not isinstance(timings, dict) or not all(_is_number(v) for v in timings.values()):
        raise _invalid('"timings_ms" must map stage names to numbers')
    gaze = obj.get("gaze")
    if gaze is not None and not _is_numbers(gaze, 2):
        raise _invalid('"gaze" must be two numbers or null')
    error = _get_object(obj, "error")
    return Result(
        frame_id=frame_id,
        capture_time_us=capture,
        status=status,
        top_k=tuple(top_k),
        timings_ms={str(k): float(v) for k, v in timings.items()},
        pose=_decode_pose(obj.get("pose")),
        gaze=None if gaze is None else (float(gaze[0]), float(gaze[1])),
        model_version=_get_str(obj, "model_version", default=""),
        error=None
        if error is None
        else ErrorInfo(_get_str(error, "code", default=""), _get_str(error, "message", 4096, default="")),
    )


def decode_server_message(text: str | bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> ServerMessage:
    """Parse a server message; unknown fields are ignored so newer servers stay readable."""
    obj = parse_json_object(text, max_bytes)
    kind = obj["type"]
    if kind == "result":
        return _decode_result(obj)
    if kind == "hello":
        server = _get_object(obj, "server") or {}
        return ServerHello(
            protocol=_get_number(obj, "protocol", 1, 255, integer=True, default=1),
            server_name=_get_str(server, "name", default=""),
            server_version=_get_str(server, "version", default=""),
            model=ModelInfo.from_json(obj.get("model")),
            session=EffectiveSettings.from_json(obj.get("session")),
            limits=Limits.from_json(obj.get("limits", {})),
        )
    if kind == "error":
        fatal = obj.get("fatal", False)
        return ErrorMessage(
            code=_get_str(obj, "code", default=""),
            message=_get_str(obj, "message", 4096, default=""),
            frame_id=_get_number(obj, "frame_id", 0, MAX_U32, integer=True),
            fatal=fatal is True,
        )
    if kind == "pong":
        ping_id = obj.get("id")
        if isinstance(ping_id, bool) or not isinstance(ping_id, (int, str)):
            raise _invalid('pong needs an integer or string "id"')
        return Pong(
            id=ping_id,
            client_time_us=_get_number(obj, "client_time_us", 0, MAX_JSON_SAFE_INT, integer=True),
            server_time_us=_get_number(obj, "server_time_us", 0, MAX_JSON_SAFE_INT, integer=True, default=0),
        )
    if kind == "configured":
        return Configured(EffectiveSettings.from_json(obj.get("session")))
    if kind == "model_changed":
        return ModelChanged(ModelInfo.from_json(obj.get("model")))
    raise ProtocolError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f'JSON message type "{kind[:40]}" is unknown')
