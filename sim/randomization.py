"""Per-frame scene randomisation: everything random about a frame, drawn from a seed, before rendering.

Each frame's generator is seeded from (dataset seed, class, index) by hashing, so a frame's content does
not depend on the class order, the per-class count or which frames were rendered before it. Coordinates
here are Panda3D world coordinates: metres, z up, the labelled object above the origin.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from vr_recognition.sim.catalog import BACKGROUND_TEXTURES, CATALOG

Vec3 = tuple[float, float, float]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts; stable across runs, platforms and Python versions."""
    digest = hashlib.sha256("/".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class SceneRanges:
    """Ranges the randomiser draws from; a recipe's [scene] table overrides these field by field."""

    vertical_fov_deg: float = 95.0
    head_height_m: tuple[float, float] = (1.5, 1.75)
    object_height_m: tuple[float, float] = (0.7, 1.5)
    distance_m: tuple[float, float] = (0.55, 1.2)
    head_yaw_jitter_deg: float = 6.0
    head_pitch_jitter_deg: float = 5.0
    head_roll_jitter_deg: float = 4.0
    object_facing_spread_deg: float = 120.0  # object turned up to ± this from facing the viewer
    max_distractors: int = 3
    motion_blur_probability: float = 0.3
    motion_blur_max_fraction: float = 0.03  # longest blur streak as a fraction of the image width
    background_weights: dict[str, float] = field(
        default_factory=lambda: {"environment": 0.4, "room": 0.4, "plain": 0.2}
    )


@dataclass(frozen=True)
class Placement:
    class_name: str
    size_m: float  # largest dimension
    centre: Vec3
    heading_deg: float


@dataclass(frozen=True)
class Lighting:
    ambient_rgb: Vec3
    sun_rgb: Vec3
    sun_heading_deg: float
    sun_pitch_deg: float


@dataclass(frozen=True)
class Background:
    kind: str  # "environment", "room" or "plain"
    sky_rgb: Vec3
    surface_rgb: Vec3  # tint of floor/walls
    texture: str | None  # wheel texture for floor/walls (room, plain)
    texture_repeat: float
    extent_m: float  # room half-size, or environment scale denominator
    heading_deg: float
    offset: tuple[float, float]


@dataclass(frozen=True)
class Viewpoint:
    """Where the sampled head stands and what it aims at (Panda3D coordinates), before jitter and roll.

    Not a pose: the renderer turns it into a camera, whose pose (server.protocol.Pose, Unity
    coordinates) is what a frame records.
    """

    position: Vec3
    look_at: Vec3
    yaw_jitter_deg: float
    pitch_jitter_deg: float
    roll_deg: float


@dataclass(frozen=True)
class MotionBlur:
    length_fraction: float  # of image width
    angle_deg: float


@dataclass(frozen=True)
class FrameParameters:
    label: str
    target: Placement
    head: Viewpoint
    lighting: Lighting
    background: Background
    distractors: tuple[Placement, ...]
    blur: MotionBlur | None


def sample_frame(
    seed: int, label: str, index: int, classes: tuple[str, ...], ranges: SceneRanges, aspect: float
) -> FrameParameters:
    """All random choices for frame `index` of class `label`."""
    rng = np.random.default_rng(derive_seed("vr-sim-frame", seed, label, index))
    target = _placement(rng, label, (0.0, 0.0, float(rng.uniform(*ranges.object_height_m))), 0.0)
    head = _viewpoint(rng, target.centre, ranges)
    view_heading = _heading_towards(head.position, target.centre)
    target = Placement(
        label,
        target.size_m,
        target.centre,
        view_heading + float(rng.uniform(-1, 1)) * ranges.object_facing_spread_deg,
    )
    others = [name for name in classes if name != label]
    count = int(rng.integers(0, ranges.max_distractors + 1)) if others else 0
    distractors = tuple(
        _distractor(rng, str(rng.choice(others)), head, target, ranges, aspect) for _ in range(count)
    )
    blur = None
    if rng.random() < ranges.motion_blur_probability:
        blur = MotionBlur(
            float(rng.uniform(0.004, ranges.motion_blur_max_fraction)), float(rng.uniform(0, 180))
        )
    return FrameParameters(
        label=label,
        target=target,
        head=head,
        lighting=sample_lighting(rng),
        background=sample_background(rng, ranges),
        distractors=distractors,
        blur=blur,
    )


def _placement(rng: np.random.Generator, name: str, centre: Vec3, heading: float) -> Placement:
    low, high = CATALOG[name].size_m
    return Placement(name, float(rng.uniform(low, high)), centre, heading)


def _viewpoint(rng: np.random.Generator, target: Vec3, ranges: SceneRanges) -> Viewpoint:
    distance = float(rng.uniform(*ranges.distance_m))
    azimuth = math.radians(float(rng.uniform(-180, 180)))
    height = float(rng.uniform(*ranges.head_height_m))
    horizontal = math.sqrt(max(distance**2 - (height - target[2]) ** 2, 0.25 * distance**2))
    position = (
        target[0] + horizontal * math.sin(azimuth),
        target[1] - horizontal * math.cos(azimuth),
        height,
    )
    return Viewpoint(
        position=position,
        look_at=target,
        yaw_jitter_deg=float(rng.uniform(-1, 1)) * ranges.head_yaw_jitter_deg,
        pitch_jitter_deg=float(rng.uniform(-1, 1)) * ranges.head_pitch_jitter_deg,
        roll_deg=float(rng.uniform(-1, 1)) * ranges.head_roll_jitter_deg,
    )


def _heading_towards(origin: Vec3, target: Vec3) -> float:
    """Panda3D heading (degrees, counter-clockwise from +y) of the horizontal direction origin->target."""
    return math.degrees(math.atan2(-(target[0] - origin[0]), target[1] - origin[1]))


def _distractor(
    rng: np.random.Generator,
    name: str,
    head: Viewpoint,
    target: Placement,
    ranges: SceneRanges,
    aspect: float,
) -> Placement:
    """Another class's object off to the side of the view and no nearer than the labelled object."""
    half_v = math.radians(ranges.vertical_fov_deg) / 2
    half_h = math.atan(math.tan(half_v) * aspect)
    side = 1.0 if rng.random() < 0.5 else -1.0
    yaw_offset = side * float(rng.uniform(0.5, 1.0)) * half_h
    pitch_offset = float(rng.uniform(-0.7, 0.5)) * half_v
    to_target = np.subtract(target.centre, head.position)
    distance = float(np.linalg.norm(to_target)) * float(rng.uniform(1.1, 2.6))
    heading = math.atan2(-to_target[0], to_target[1]) + yaw_offset
    pitch = math.atan2(to_target[2], math.hypot(to_target[0], to_target[1])) + pitch_offset
    direction = (-math.sin(heading) * math.cos(pitch), math.cos(heading) * math.cos(pitch), math.sin(pitch))
    placement = _placement(rng, name, (0.0, 0.0, 0.0), float(rng.uniform(0, 360)))
    centre = tuple(float(head.position[i] + distance * direction[i]) for i in range(3))
    centre = (centre[0], centre[1], max(centre[2], placement.size_m / 2))
    return Placement(name, placement.size_m, centre, placement.heading_deg)


def sample_lighting(rng: np.random.Generator) -> Lighting:
    ambient = float(rng.uniform(0.15, 0.5))
    ambient_tint = rng.uniform(0.85, 1.0, size=3)
    sun = float(rng.uniform(0.45, 1.1))
    warmth = float(rng.uniform(-1, 1))  # <0 cool (bluish), >0 warm (orange)
    sun_tint = (1.0 + 0.15 * warmth, 1.0, 1.0 - 0.25 * warmth)
    return Lighting(
        ambient_rgb=tuple(float(ambient * c) for c in ambient_tint),  # type: ignore[arg-type]
        sun_rgb=tuple(float(sun * c) for c in sun_tint),  # type: ignore[arg-type]
        sun_heading_deg=float(rng.uniform(0, 360)),
        sun_pitch_deg=float(rng.uniform(-85, -20)),
    )


def sample_background(rng: np.random.Generator, ranges: SceneRanges) -> Background:
    kinds = sorted(ranges.background_weights)
    weights = np.array([ranges.background_weights[kind] for kind in kinds], dtype=float)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    sky = rng.uniform(0.2, 0.95, size=3)
    if kind == "environment":
        sky = np.array([0.45, 0.6, 0.85]) * rng.uniform(0.7, 1.15) + rng.uniform(-0.08, 0.08, size=3)
    return Background(
        kind=kind,
        sky_rgb=tuple(float(c) for c in np.clip(sky, 0, 1)),  # type: ignore[arg-type]
        surface_rgb=tuple(float(c) for c in rng.uniform(0.35, 1.0, size=3)),  # type: ignore[arg-type]
        texture=str(rng.choice(BACKGROUND_TEXTURES)) if rng.random() < 0.75 else None,
        texture_repeat=float(rng.uniform(1.0, 6.0)),
        extent_m=float(rng.uniform(2.5, 6.0)) if kind != "environment" else float(rng.uniform(15, 35)),
        heading_deg=float(rng.uniform(0, 360)),
        offset=(float(rng.uniform(-4, 4)), float(rng.uniform(-4, 4))),
    )
