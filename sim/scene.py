"""Turns FrameParameters into a Panda3D scene graph and renders it: objects, background, lights, head.

Everything of one frame hangs under a single `scene` node that is rebuilt per frame; model geometry is
loaded once per renderer and instanced, so a frame costs only the rasterisation.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from panda3d.core import (
    AmbientLight,
    CardMaker,
    DirectionalLight,
    NodePath,
    TextureStage,
)

from vr_recognition.server.imaging import motion_blur
from vr_recognition.server.protocol import Pose
from vr_recognition.sim.catalog import CATALOG, ENVIRONMENT_MODEL
from vr_recognition.sim.coordinates import head_pose_of
from vr_recognition.sim.engine import OffscreenRenderer
from vr_recognition.sim.randomization import Background, FrameParameters, Lighting, Placement

OVERRIDE = 1000  # attribute priority that beats anything a model file sets
WALL_HEIGHT_M = 3.0
FRAME_SCENE_TAG = "vr-sim-frame-scene"
# Distractors whose projected bounds reach into this central window (normalised, around the gaze) are
# dropped, so the labelled object always owns the centre of the view.
CENTRE_KEEP_OUT = 0.15


@dataclasses.dataclass
class ComposedScene:
    """The live node paths of one composed frame (valid until the next compose)."""

    target: NodePath
    distractors: list[NodePath]
    background: NodePath


@dataclasses.dataclass
class RenderedFrame:
    rgb: np.ndarray  # HxWx3 uint8
    label: str
    pose: Pose  # capture-format (Unity) coordinates
    gaze: tuple[float, float]  # labelled object's projected centre, normalised, origin top-left
    distractors: int  # distractors kept in the frame (some may still be outside the view)


class SceneBuilder:
    """Places catalog objects, backgrounds and lights under a parent node."""

    def __init__(self, renderer: OffscreenRenderer) -> None:
        self.renderer = renderer
        self._normalisation: dict[str, tuple[tuple[float, float, float], float]] = {}

    def place_object(self, parent: NodePath, placement: Placement) -> NodePath:
        """An instance of the class's model, centred on placement.centre and scaled to placement.size_m."""
        entry = CATALOG[placement.class_name]
        prototype = self.renderer.model(entry.model)
        centre, size = self._bounds(entry.name, prototype)
        holder = parent.attach_new_node(placement.class_name)
        holder.set_pos(*placement.centre)
        holder.set_h(placement.heading_deg)
        holder.set_scale(placement.size_m / size)
        offset = holder.attach_new_node("model-origin")
        offset.set_pos(-centre[0], -centre[1], -centre[2])
        prototype.instance_to(offset)
        if entry.flat_color is not None:
            offset.set_material_off(1)  # its material is black; let the lights shade the flat colour
            offset.set_color(*entry.flat_color, 1.0, 1)
        return holder

    def _bounds(self, name: str, prototype: NodePath) -> tuple[tuple[float, float, float], float]:
        if name not in self._normalisation:
            low, high = prototype.get_tight_bounds()
            centre = ((low.x + high.x) / 2, (low.y + high.y) / 2, (low.z + high.z) / 2)
            self._normalisation[name] = (centre, max(high - low))
        return self._normalisation[name]

    def add_lighting(self, parent: NodePath, lighting: Lighting) -> None:
        ambient = AmbientLight("ambient")
        ambient.set_color((*lighting.ambient_rgb, 1.0))
        sun = DirectionalLight("sun")
        sun.set_color((*lighting.sun_rgb, 1.0))
        sun_path = parent.attach_new_node(sun)
        sun_path.set_hpr(lighting.sun_heading_deg, lighting.sun_pitch_deg, 0)
        parent.set_light(parent.attach_new_node(ambient))
        parent.set_light(sun_path)

    def add_background(self, parent: NodePath, background: Background) -> NodePath:
        self.renderer.set_background(background.sky_rgb)
        root = parent.attach_new_node(f"background-{background.kind}")
        if background.kind == "environment":
            environment = root.attach_new_node("environment")
            environment.set_scale(1.0 / background.extent_m)
            environment.set_h(background.heading_deg)
            environment.set_pos(background.offset[0], background.offset[1], 0.0)
            self.renderer.model(ENVIRONMENT_MODEL).instance_to(environment)
            return root
        extent = background.extent_m
        # Keep the labelled object (at the origin) and the head (within ~1.5 m of it) inside the room.
        shift = max(extent - 2.0, 0.0) / 4.0
        root.set_pos(background.offset[0] * shift, background.offset[1] * shift, 0.0)
        root.set_h(background.heading_deg)
        self._card(root, extent, extent, background).set_p(-90)  # floor
        if background.kind == "room":
            for heading in (0, 90, 180, 270):
                wall = self._card(root, extent, WALL_HEIGHT_M / 2, background)
                wall.set_h(heading)
                wall.set_pos(wall, 0, extent, WALL_HEIGHT_M / 2)
        return root

    def _card(
        self, parent: NodePath, half_width: float, half_height: float, background: Background
    ) -> NodePath:
        maker = CardMaker("surface")
        maker.set_frame(-half_width, half_width, -half_height, half_height)
        card = parent.attach_new_node(maker.generate())
        card.set_two_sided(True)
        card.set_color(*background.surface_rgb, 1.0)
        if background.texture is not None:
            card.set_texture(self.renderer.texture(background.texture))
            card.set_tex_scale(TextureStage.get_default(), background.texture_repeat * half_width / 2)
        return card


class FrameRenderer:
    """Renders FrameParameters to pixels plus the label, head pose and gaze point the frame records.

    A renderer's world holds one frame scene at a time: creating a FrameRenderer removes the scene of any
    earlier FrameRenderer on the same renderer (otherwise both would be drawn).
    """

    def __init__(self, renderer: OffscreenRenderer) -> None:
        self.renderer = renderer
        self.builder = SceneBuilder(renderer)
        for stale in renderer.world.find_all_matches(f"={FRAME_SCENE_TAG}"):
            stale.remove_node()
        self.scene = self._new_scene()

    def _new_scene(self) -> NodePath:
        scene = self.renderer.world.attach_new_node("scene")
        scene.set_tag(FRAME_SCENE_TAG, "1")
        return scene

    def compose(self, params: FrameParameters) -> ComposedScene:
        self.scene.remove_node()
        self.scene = self._new_scene()
        background = self.builder.add_background(self.scene, params.background)
        self.builder.add_lighting(self.scene, params.lighting)
        target = self.builder.place_object(self.scene, params.target)
        camera = self.renderer.camera
        camera.set_pos(*params.head.position)
        camera.look_at(*params.head.look_at)
        camera.set_hpr(
            camera.get_h() + params.head.yaw_jitter_deg,
            camera.get_p() + params.head.pitch_jitter_deg,
            params.head.roll_deg,
        )
        distractors = []
        for placement in params.distractors:
            node = self.builder.place_object(self.scene, placement)
            if self._reaches_centre(node):
                node.remove_node()
            else:
                distractors.append(node)
        return ComposedScene(target=target, distractors=distractors, background=background)

    def _reaches_centre(self, node: NodePath) -> bool:
        box = self.renderer.projected_box(node)
        if box is None:  # partly behind the head: out of view or too close to judge, drop it
            return True
        u0, v0, u1, v1 = box
        low, high = 0.5 - CENTRE_KEEP_OUT, 0.5 + CENTRE_KEEP_OUT
        return u0 < high and u1 > low and v0 < high and v1 > low

    def render(self, params: FrameParameters) -> RenderedFrame:
        composed = self.compose(params)
        gaze = self.renderer.project(params.target.centre)
        assert gaze is not None, "the labelled object is always in front of the head"
        rgb = self.renderer.render_rgb()
        if params.blur is not None:
            rgb = motion_blur(rgb, round(params.blur.length_fraction * rgb.shape[1]), params.blur.angle_deg)
        return RenderedFrame(
            rgb=rgb,
            label=params.label,
            pose=head_pose_of(self.renderer.camera, self.renderer.world),
            gaze=(min(max(gaze[0], 0.0), 1.0), min(max(gaze[1], 0.0), 1.0)),
            distractors=len(composed.distractors),
        )


def render_object_ids(
    renderer: OffscreenRenderer, objects: list[NodePath], hidden: list[NodePath]
) -> np.ndarray:
    """Second render pass: HxW int map, 0 = nothing, i = objects[i-1] (flat colours, no lights/textures).

    Used to check labels: which object really covers the gaze point, and how much of it is visible.
    """
    if len(objects) > 6:
        raise ValueError("at most 6 objects per id pass")
    world = renderer.world
    for node in hidden:
        node.hide()
    world.set_light_off(OVERRIDE)
    world.set_texture_off(OVERRIDE)
    world.set_material_off(OVERRIDE)
    world.set_color_scale_off(OVERRIDE)
    for index, node in enumerate(objects, start=1):
        node.set_color(index * 40 / 255, 0, 0, 1, OVERRIDE)
    clear = renderer.buffer.get_clear_color()
    renderer.set_background((0.0, 0.0, 0.0))
    try:
        red = renderer.render_rgb()[:, :, 0].astype(np.int32)
    finally:
        renderer.buffer.set_clear_color(clear)
        for node in objects:
            node.clear_color()
        for attribute in ("light", "texture", "material", "color_scale"):
            getattr(world, f"clear_{attribute}")()
        for node in hidden:
            node.show()
    return np.clip(np.rint(red / 40), 0, len(objects)).astype(np.int32)
