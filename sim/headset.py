"""The live half's engine: a head moving smoothly through a scene of labelled objects, frame after frame.

A simulated user looks at one object for a while, then turns to the next; the head wanders a little and
the gaze leads the turn. The true label of a frame is the object whose projected centre is nearest the
gaze point, which is what a recognition server answering "what is the user looking at" should return.
Networking (streaming these frames to vr-serve) is deliberately not here; see sim.stream.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from vr_recognition.server.protocol import Pose
from vr_recognition.sim.catalog import resolve_classes
from vr_recognition.sim.coordinates import head_pose_of
from vr_recognition.sim.engine import OffscreenRenderer
from vr_recognition.sim.randomization import (
    Placement,
    SceneRanges,
    derive_seed,
    sample_background,
    sample_lighting,
)
from vr_recognition.sim.scene import SceneBuilder

HOME = (0.0, 0.0, 1.65)  # where the user stands, Panda3D coordinates (z up), head height 1.65 m


@dataclasses.dataclass(frozen=True)
class LiveFrame:
    rgb: np.ndarray  # HxWx3 uint8
    label: str  # object nearest the gaze point
    pose: Pose  # capture-format (Unity) coordinates
    gaze: tuple[float, float]  # normalised, origin top-left
    timestamp_s: float


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


class HeadsetPath:
    """Smooth, continuous head motion: where the head is and what it looks at, as functions of time."""

    def __init__(
        self,
        targets: list[tuple[float, float, float]],
        seed: int,
        dwell_s: tuple[float, float] = (1.2, 2.5),
        turn_s: float = 0.45,
    ) -> None:
        rng = np.random.default_rng(derive_seed("vr-sim-path", seed))
        self._targets = targets
        self._turn_s = turn_s
        # A long schedule of (start time, target index) fixed by the seed; it repeats after its end.
        order, time, schedule = int(rng.integers(len(targets))), 0.0, []
        for _ in range(64):
            schedule.append((time, order))
            time += float(rng.uniform(*dwell_s)) + turn_s
            order = (order + int(rng.integers(1, len(targets)))) % len(targets) if len(targets) > 1 else 0
        self._schedule, self._period = schedule, time
        self._phases = rng.uniform(0, 2 * math.pi, size=6)

    def head_position(self, t: float) -> tuple[float, float, float]:
        p = self._phases
        return (
            HOME[0] + 0.25 * math.sin(0.31 * t + p[0]) + 0.05 * math.sin(1.7 * t + p[1]),
            HOME[1] + 0.25 * math.sin(0.23 * t + p[2]),
            HOME[2] + 0.03 * math.sin(0.9 * t + p[3]),
        )

    def look_point(self, t: float) -> tuple[float, float, float]:
        """Gaze target: the current object, blending into the next one during a turn."""
        t = t % self._period
        slot = max(index for index, (start, _) in enumerate(self._schedule) if start <= t)
        _, current = self._schedule[slot]
        next_start, upcoming = self._schedule[(slot + 1) % len(self._schedule)]
        if slot + 1 == len(self._schedule):
            next_start = self._period
        blend = _smoothstep((t - (next_start - self._turn_s)) / self._turn_s)
        a, b = self._targets[current], self._targets[upcoming]
        return tuple(a[i] + (b[i] - a[i]) * blend for i in range(3))  # type: ignore[return-value]

    def roll_deg(self, t: float) -> float:
        return 2.5 * math.sin(0.5 * t + self._phases[4]) + 0.5 * math.sin(2.3 * t + self._phases[5])


class LiveScene:
    """Several labelled objects around a standing user; `next_frame()` advances time by 1/fps."""

    def __init__(
        self,
        width: int,
        height: int,
        classes: tuple[str, ...],
        *,
        seed: int = 0,
        fps: float = 90.0,
        vertical_fov_deg: float = 95.0,
    ) -> None:
        resolve_classes(classes)
        rng = np.random.default_rng(derive_seed("vr-sim-live", seed))
        self.renderer = OffscreenRenderer(width, height, vertical_fov_deg)
        self.fps = fps
        self.frame_index = 0
        builder = SceneBuilder(self.renderer)
        self.scene = self.renderer.world.attach_new_node("live-scene")
        background = sample_background(
            rng, dataclasses.replace(SceneRanges(), background_weights={"room": 1.0})
        )
        builder.add_background(self.scene, dataclasses.replace(background, extent_m=6.0, offset=(0.0, 0.0)))
        builder.add_lighting(self.scene, sample_lighting(rng))
        self.objects: list[tuple[str, tuple[float, float, float]]] = []
        step = 2 * math.pi / len(classes)
        for index, name in enumerate(classes):
            angle = index * step + float(rng.uniform(-0.2, 0.2)) * step
            radius = float(rng.uniform(1.6, 2.4))
            centre = (-radius * math.sin(angle), radius * math.cos(angle), float(rng.uniform(0.9, 1.5)))
            builder.place_object(self.scene, Placement(name, 0.5, centre, math.degrees(angle) + 180.0))
            self.objects.append((name, centre))
        self.path = HeadsetPath([centre for _, centre in self.objects], seed)

    def next_frame(self) -> LiveFrame:
        t = self.frame_index / self.fps
        self.frame_index += 1
        camera = self.renderer.camera
        look = self.path.look_point(t)
        camera.set_pos(*self.path.head_position(t))
        camera.look_at(*look)
        camera.set_r(self.path.roll_deg(t))
        gaze = self.renderer.project(look) or (0.5, 0.5)
        rgb = self.renderer.render_rgb()
        return LiveFrame(
            rgb=rgb,
            label=self.label_at(gaze),
            pose=head_pose_of(camera, self.renderer.world),
            gaze=(min(max(gaze[0], 0.0), 1.0), min(max(gaze[1], 0.0), 1.0)),
            timestamp_s=t,
        )

    def label_at(self, gaze: tuple[float, float]) -> str:
        """The object whose projected centre is nearest the gaze point (among those in front)."""
        best, best_distance = self.objects[0][0], math.inf
        for name, centre in self.objects:
            projected = self.renderer.project(centre)
            if projected is None:
                continue
            distance = math.hypot(projected[0] - gaze[0], projected[1] - gaze[1])
            if distance < best_distance:
                best, best_distance = name, distance
        return best

    def close(self) -> None:
        self.renderer.close()

    def __enter__(self) -> LiveScene:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
