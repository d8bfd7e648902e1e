"""Renders a recipe into one capture session (docs/capture-format.md) with a progress bar."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vr_recognition.server.imaging import encode_jpeg
from vr_recognition.sim import SOURCE_NAME
from vr_recognition.sim.engine import OffscreenRenderer
from vr_recognition.sim.errors import SimError
from vr_recognition.sim.randomization import derive_seed, sample_frame
from vr_recognition.sim.recipe import DatasetRecipe
from vr_recognition.sim.scene import FrameRenderer
from vr_recognition.training.capture_format import (
    SESSION_FILE,
    FrameRecord,
    SessionInfo,
    SessionWriter,
    frame_image_name,
)

# Simulated frames are not a time series; they get timestamps of a nominal 90 Hz headset clock.
NOMINAL_FPS = 90.0


def validation_indices(seed: int, class_name: str, per_class: int, val_fraction: float) -> frozenset[int]:
    """Exactly round(val_fraction * per_class) frame indices of a class go to "val", chosen by the seed."""
    rng = np.random.default_rng(derive_seed("vr-sim-split", seed, class_name))
    count = round(val_fraction * per_class)
    return frozenset(int(index) for index in rng.permutation(per_class)[:count])


def render_dataset(
    recipe: DatasetRecipe, out_dir: str | Path, *, overwrite: bool = False, progress: bool = True
) -> Path:
    """Write `out_dir/<session>/` and return the session folder."""
    session_dir = Path(out_dir) / recipe.resolved_session_name
    if (session_dir / SESSION_FILE).is_file():
        if not overwrite:
            raise SimError(f"{session_dir}: session already exists; pass --overwrite or write elsewhere")
        shutil.rmtree(session_dir)
    info = SessionInfo(
        source=SOURCE_NAME,
        width=recipe.width,
        height=recipe.height,
        vertical_fov_deg=recipe.scene.vertical_fov_deg,
        classes=recipe.classes,
        notes="Synthetic frames rendered by vr-sim (Panda3D software renderer); timestamps are a nominal "
        f"{NOMINAL_FPS:g} Hz clock, not capture times.",
        extra={"recipe": _recipe_json(recipe)},
    )
    renderer = OffscreenRenderer(recipe.width, recipe.height, recipe.scene.vertical_fov_deg)
    frames = FrameRenderer(renderer)
    total = len(recipe.classes) * recipe.per_class
    try:
        with (
            SessionWriter(session_dir, info) as writer,
            tqdm(total=total, unit="frame", desc="vr-sim render", disable=not progress) as bar,
        ):
            number = 0
            for class_name in recipe.classes:
                val = validation_indices(recipe.seed, class_name, recipe.per_class, recipe.val_fraction)
                for index in range(recipe.per_class):
                    params = sample_frame(
                        recipe.seed,
                        class_name,
                        index,
                        recipe.classes,
                        recipe.scene,
                        recipe.width / recipe.height,
                    )
                    frame = frames.render(params)
                    relative = frame_image_name(number)
                    writer.image_path_for(relative).write_bytes(encode_jpeg(frame.rgb, recipe.quality))
                    writer.add_frame(
                        FrameRecord(
                            image=relative,
                            label=frame.label,
                            timestamp_s=round(number / NOMINAL_FPS, 6),
                            pose=frame.pose,
                            gaze=frame.gaze,
                            split="val" if index in val else "train",
                        )
                    )
                    number += 1
                    bar.update()
    finally:
        renderer.close()
    return session_dir


def _recipe_json(recipe: DatasetRecipe) -> dict:
    data = dataclasses.asdict(recipe)
    data["classes"] = list(recipe.classes)
    data["session_name"] = recipe.resolved_session_name
    return data
