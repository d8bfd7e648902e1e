"""Dataset recipes: a TOML file of render settings that command-line flags override field by field."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vr_recognition.server.imaging import parse_size
from vr_recognition.sim.catalog import DEFAULT_CLASSES, resolve_classes
from vr_recognition.sim.errors import SimError
from vr_recognition.sim.randomization import SceneRanges


@dataclasses.dataclass(frozen=True)
class DatasetRecipe:
    classes: tuple[str, ...] = DEFAULT_CLASSES
    per_class: int = 200
    width: int = 1280
    height: int = 720
    seed: int = 0
    val_fraction: float = 0.2
    quality: int = 90
    session_name: str = ""  # empty: derived from the seed
    scene: SceneRanges = dataclasses.field(default_factory=SceneRanges)

    def validated(self) -> DatasetRecipe:
        resolve_classes(self.classes)
        if self.per_class < 1:
            raise SimError(f"per_class must be >= 1, got {self.per_class}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise SimError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 1 <= self.quality <= 100:
            raise SimError(f"quality must be in 1..100, got {self.quality}")
        if self.width < 16 or self.height < 16:
            raise SimError(f"size too small: {self.width}x{self.height}")
        if not 30.0 <= self.scene.vertical_fov_deg <= 150.0:
            raise SimError(f"vertical_fov_deg must be in [30, 150], got {self.scene.vertical_fov_deg}")
        return self

    @property
    def resolved_session_name(self) -> str:
        return self.session_name or f"vr-sim-seed{self.seed}"


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    with path.open("rb") as handle:
        return tomllib.load(handle)


def load_recipe(path: str | Path | None, **overrides: Any) -> DatasetRecipe:
    """Recipe from a TOML file (or the defaults), then non-None overrides; validated."""
    values: dict[str, Any] = {}
    scene_values: dict[str, Any] = {}
    if path is not None:
        data = _load_toml(Path(path))
        dataset = dict(data.get("dataset", {}))
        scene_values = dict(data.get("scene", {}))
        unknown = set(data) - {"dataset", "scene"}
        if unknown:
            raise SimError(f"{path}: unknown table(s) {sorted(unknown)}; expected [dataset] and [scene]")
        if "size" in dataset:
            try:
                dataset["width"], dataset["height"] = parse_size(dataset.pop("size"))
            except ValueError as error:
                raise SimError(f"{path}: {error}") from None
        values.update(dataset)
    values.update({key: value for key, value in overrides.items() if value is not None})
    if "classes" in values:
        values["classes"] = tuple(values["classes"])
    recipe_fields = {field.name for field in dataclasses.fields(DatasetRecipe)} - {"scene"}
    scene_fields = {field.name for field in dataclasses.fields(SceneRanges)}
    for name, given, allowed in (("dataset", values, recipe_fields), ("scene", scene_values, scene_fields)):
        unknown = set(given) - allowed
        if unknown:
            raise SimError(f"unknown {name} setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    scene_values = {
        key: tuple(value) if isinstance(value, list) else value for key, value in scene_values.items()
    }
    scene = dataclasses.replace(SceneRanges(), **scene_values)
    return DatasetRecipe(**values, scene=scene).validated()
