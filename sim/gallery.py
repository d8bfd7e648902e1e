"""A labelled grid of rendered frames (docs/images/sim-gallery.png), composed with numpy + OpenCV."""

from __future__ import annotations

import cv2
import numpy as np

from vr_recognition.sim.engine import OffscreenRenderer
from vr_recognition.sim.errors import SimError
from vr_recognition.sim.randomization import sample_frame
from vr_recognition.sim.recipe import DatasetRecipe
from vr_recognition.sim.scene import FrameRenderer


def render_gallery(recipe: DatasetRecipe, per_class: int = 3, tile_width: int = 320) -> np.ndarray:
    """RGB image: one row per class, `per_class` frames each, label and gaze point drawn on every tile."""
    tile_height = round(tile_width * recipe.height / recipe.width)
    renderer = OffscreenRenderer(tile_width, tile_height, recipe.scene.vertical_fov_deg)
    frames = FrameRenderer(renderer)
    rows = []
    try:
        for class_name in recipe.classes:
            tiles = []
            for index in range(per_class):
                params = sample_frame(
                    recipe.seed, class_name, index, recipe.classes, recipe.scene, tile_width / tile_height
                )
                frame = frames.render(params)
                tiles.append(_annotate(frame.rgb, f"{class_name}  ({params.background.kind})", frame.gaze))
            rows.append(np.hstack(_with_gaps(tiles, axis=1)))
    finally:
        renderer.close()
    return np.vstack(_with_gaps(rows, axis=0))


def _annotate(rgb: np.ndarray, text: str, gaze: tuple[float, float]) -> np.ndarray:
    tile = np.ascontiguousarray(rgb.copy())
    height, width = tile.shape[:2]
    centre = (round(gaze[0] * width), round(gaze[1] * height))
    cv2.circle(tile, centre, 5, (255, 255, 255), 1, cv2.LINE_AA)  # the recorded gaze point
    cv2.rectangle(tile, (0, 0), (width, 24), (0, 0, 0), -1)
    cv2.putText(tile, text, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _with_gaps(images: list[np.ndarray], axis: int, gap: int = 4) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for image in images:
        if out:
            shape = list(image.shape)
            shape[axis] = gap
            out.append(np.full(shape, 255, dtype=np.uint8))
        out.append(image)
    return out


def save_png(rgb: np.ndarray, path: str) -> None:
    if not cv2.imwrite(path, np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SimError(f"could not write {path}")
