"""Headless Panda3D renderer: one offscreen software framebuffer, read back as numpy RGB.

Uses the p3tinydisplay software rasteriser through its offscreen pipe, so it needs neither a GPU nor an
X display and gives bit-identical pixels for identical scenes (what makes seeded datasets reproducible).
"""

from __future__ import annotations

import math

import numpy as np
from panda3d.core import (
    Camera,
    FrameBufferProperties,
    GraphicsEngine,
    GraphicsOutput,
    GraphicsPipe,
    GraphicsPipeSelection,
    LColor,
    Loader,
    LoaderOptions,
    NodePath,
    PerspectiveLens,
    Point2,
    Point3,
    Texture,
    TexturePool,
    WindowProperties,
    loadPrcFileData,
)

from vr_recognition.sim.errors import SimError

_CONFIG = """
load-display p3tinydisplay
window-type offscreen
audio-library-name null
model-cache-dir
notify-level warning
default-directnotify-level warning
sync-video false
allow-incomplete-render false
"""
_configured = False
# One software "graphics context" for every renderer in the process: textures prepared by one context
# and drawn by a second render differently (texture state is per context), which broke reproducibility.
_shared_gsg = None


def configure_panda3d() -> None:
    """Apply the headless configuration once per process (Panda3D reads it when the pipe is made)."""
    global _configured
    if not _configured:
        loadPrcFileData("vr-sim", _CONFIG)
        _configured = True


_shared_pipe = None


def _make_pipe() -> GraphicsPipe:
    global _shared_pipe
    if _shared_pipe is not None:
        return _shared_pipe
    configure_panda3d()
    selection = GraphicsPipeSelection.get_global_ptr()
    # Ask for the offscreen pipe by name: the module's default pipe tries to open an X display first.
    pipe = selection.make_pipe("TinyOffscreenGraphicsPipe", "p3tinydisplay")
    if pipe is None:
        raise SimError("Panda3D's software renderer (p3tinydisplay) is unavailable in this build")
    _shared_pipe = pipe
    return pipe


class OffscreenRenderer:
    """A scene graph (`world`), a perspective camera with an HMD-like vertical FOV, and a framebuffer."""

    def __init__(self, width: int, height: int, vertical_fov_deg: float = 95.0) -> None:
        if width < 16 or height < 16:
            raise SimError(f"image size too small: {width}x{height}")
        self.width, self.height = width, height
        self.vertical_fov_deg = vertical_fov_deg
        self.engine = GraphicsEngine.get_global_ptr()
        framebuffer = FrameBufferProperties()
        framebuffer.set_rgb_color(True)
        framebuffer.set_color_bits(24)
        framebuffer.set_depth_bits(24)
        global _shared_gsg
        self.buffer = self.engine.make_output(
            _make_pipe(),
            "vr-sim",
            0,
            framebuffer,
            WindowProperties.size(width, height),
            GraphicsPipe.BF_refuse_window,
            _shared_gsg,
        )
        if self.buffer is None:
            raise RuntimeError(f"could not create a {width}x{height} offscreen buffer")
        _shared_gsg = self.buffer.get_gsg()
        # Inactive except while rendering: GraphicsEngine.render_frame() draws every active buffer, and
        # several software buffers drawn in one frame disturb each other's output (seen as lighting noise).
        self.buffer.set_active(False)
        self._texture = Texture("frame")
        self.buffer.add_render_texture(self._texture, GraphicsOutput.RTM_copy_ram)
        self.world = NodePath("world")
        self.lens = PerspectiveLens()
        horizontal = 2 * math.degrees(
            math.atan(math.tan(math.radians(vertical_fov_deg) / 2) * width / height)
        )
        self.lens.set_fov(horizontal, vertical_fov_deg)
        self.lens.set_near_far(0.05, 400.0)
        camera_node = Camera("head")
        camera_node.set_lens(self.lens)
        self.camera = self.world.attach_new_node(camera_node)
        self.buffer.make_display_region().set_camera(self.camera)
        self._models: dict[str, NodePath] = {}
        self.set_background((0.0, 0.0, 0.0))

    def set_background(self, rgb: tuple[float, float, float]) -> None:
        self.buffer.set_clear_color(LColor(rgb[0], rgb[1], rgb[2], 1.0))

    def model(self, path: str) -> NodePath:
        """Loaded once per renderer and shared: place it with `instance_to`, never move the prototype."""
        if path not in self._models:
            node = Loader.get_global_ptr().load_sync(path, LoaderOptions())
            if node is None:
                raise SimError(f"Panda3D model {path!r} not found on the model path")
            self._models[path] = NodePath(node)
        return self._models[path]

    @staticmethod
    def texture(path: str) -> Texture:
        texture = TexturePool.load_texture(path)
        if texture is None:
            raise SimError(f"Panda3D texture {path!r} not found on the model path")
        return texture

    def render_rgb(self) -> np.ndarray:
        """Render one frame and return it as a fresh HxWx3 uint8 RGB array (row 0 = top)."""
        self.buffer.set_active(True)
        try:
            self.engine.render_frame()
        finally:
            self.buffer.set_active(False)
        data = self._texture.get_ram_image_as("RGB")
        image = np.frombuffer(memoryview(data), dtype=np.uint8)
        return image.reshape(self.height, self.width, 3)[::-1].copy()

    def project(self, point: Point3 | tuple[float, float, float]) -> tuple[float, float] | None:
        """World point -> normalised image (u, v), origin top-left; None when behind the camera."""
        local = self.camera.get_relative_point(self.world, Point3(*point))
        film = Point2()
        if local.y <= 0 or not self.lens.project(local, film):
            # Lens.project also fails for points off the film; extrapolate those with the pinhole model.
            if local.y <= 0:
                return None
            film = Point2(
                local.x / local.y / math.tan(math.radians(self.lens.get_hfov()) / 2),
                local.z / local.y / math.tan(math.radians(self.lens.get_vfov()) / 2),
            )
        return (float(film.x) + 1.0) / 2.0, (1.0 - float(film.y)) / 2.0

    def projected_box(self, node: NodePath) -> tuple[float, float, float, float] | None:
        """Normalised (u0, v0, u1, v1) of the node's tight bounds; None if any corner is behind the head."""
        low, high = node.get_tight_bounds(self.world)
        corners = [Point3(x, y, z) for x in (low.x, high.x) for y in (low.y, high.y) for z in (low.z, high.z)]
        projected = [self.project(corner) for corner in corners]
        if any(point is None for point in projected):
            return None
        us = [point[0] for point in projected]  # type: ignore[index]
        vs = [point[1] for point in projected]  # type: ignore[index]
        return min(us), min(vs), max(us), max(vs)

    def close(self) -> None:
        if self.buffer is not None:
            self.engine.remove_window(self.buffer)
            self.buffer = None
        self.world.remove_node()

    def __enter__(self) -> OffscreenRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
