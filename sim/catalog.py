"""The recognisable objects: which model in the Panda3D wheel each class uses and how big it is.

Only models shipped inside the `panda3d` wheel are used, so rendering never downloads anything. Models are
authored facing -y (towards a viewer standing at -y), which is what `front_faces_viewer` relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

from vr_recognition.sim.errors import SimError


@dataclass(frozen=True)
class ObjectClass:
    name: str
    model: str  # path on Panda3D's model path (the wheel's models/ folder)
    size_m: tuple[float, float]  # range of the object's largest dimension, metres
    flat_color: tuple[float, float, float] | None = None  # for models shipped without colour (camera)


CATALOG: dict[str, ObjectClass] = {
    entry.name: entry
    for entry in (
        ObjectClass("panda", "models/panda", (0.7, 1.0)),
        ObjectClass("teapot", "models/teapot", (0.45, 0.7)),
        ObjectClass("box", "models/box", (0.35, 0.55)),
        ObjectClass("smiley", "models/smiley", (0.3, 0.5)),
        ObjectClass("frowney", "models/frowney", (0.3, 0.5)),
        ObjectClass("jack", "models/jack", (0.3, 0.5)),
        ObjectClass("camera", "models/camera", (0.5, 0.75), flat_color=(0.32, 0.3, 0.28)),
        ObjectClass("walking-panda", "models/panda-model", (0.5, 0.8)),
    )
}

# Seven classes that differ in shape or colour (walking-panda is left out: it is a second panda).
DEFAULT_CLASSES: tuple[str, ...] = ("panda", "teapot", "box", "smiley", "frowney", "jack", "camera")

# Wheel textures used for backgrounds. noise/random are left out: the `box` class is textured with noise.
BACKGROUND_TEXTURES: tuple[str, ...] = (
    "models/maps/grid.rgb",
    "models/maps/color-grid.rgb",
    "models/maps/envir-ground.jpg",
    "models/maps/envir-rock1.jpg",
    "models/maps/envir-rock2.jpg",
    "models/maps/envir-treetrunk.jpg",
)
ENVIRONMENT_MODEL = "models/environment"


def resolve_classes(names: list[str] | tuple[str, ...]) -> tuple[ObjectClass, ...]:
    """Catalog entries for class names, with an error listing the valid names."""
    unknown = [name for name in names if name not in CATALOG]
    if unknown:
        raise SimError(f"unknown class(es) {unknown}; available: {', '.join(CATALOG)}")
    if len(set(names)) != len(names):
        raise SimError(f"duplicate class names in {list(names)}")
    if not names:
        raise SimError("no classes given")
    return tuple(CATALOG[name] for name in names)
