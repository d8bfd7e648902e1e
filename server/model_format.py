"""The model contract: what an exported .onnx file must carry so any server can serve it.

train-vr writes these fields into the ONNX file's metadata; vr-serve reads them back through
onnxruntime (`session.get_modelmeta().custom_metadata_map`), so the server needs neither torch nor
the onnx package. Pure Python; docs/model-format.md is the human description.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vr_recognition.server.errors import ServeError
from vr_recognition.server.protocol import ModelInfo

FORMAT_NAME = "vr-recognition-model"
FORMAT_VERSION = 1
INPUT_NAME = "image"  # uint8 [batch, height, width, 3], RGB, already resized and cropped
OUTPUT_NAME = "probabilities"  # float32 [batch, classes], softmax applied in the graph
KEY_PREFIX = "vr."
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# How a frame of any aspect ratio becomes the model's H x W input (docs/model-format.md):
# "centre_crop": resize the shorter side to resize_shorter, keep the centred H x W (a 16:9 frame loses
# its sides); "stretch": resize the whole frame to W x H (nothing lost, shapes distorted).
FRAME_MAPPINGS = ("centre_crop", "stretch")
PRECISIONS = ("float32", "float16", "int8")


class ModelFormatError(ServeError):
    """The file is not a model this server can serve; the message says which field is wrong."""


@dataclass(frozen=True)
class ModelContract:
    """Everything about a model that serving depends on, plus provenance for people."""

    name: str
    version: str
    classes: tuple[str, ...]
    input_height: int
    input_width: int
    resize_shorter: int  # frames are resized so their shorter side is this, then centre-cropped
    mean: tuple[float, float, float] = IMAGENET_MEAN  # applied inside the graph; recorded for people
    std: tuple[float, float, float] = IMAGENET_STD
    arch: str = ""
    created: str = ""
    val_accuracy: float | None = None
    dataset: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    frame_mapping: str = "centre_crop"  # one of FRAME_MAPPINGS
    precision: str = "float32"  # the weights' precision, one of PRECISIONS
    derived: dict[str, Any] = field(default_factory=dict)  # e.g. quantization: source file, calibration

    def info(self, provider: str) -> ModelInfo:
        """The model as the protocol describes it to clients, served on `provider`."""
        return ModelInfo(
            self.name, self.version, self.classes, self.input_width, self.input_height, provider,
            self.frame_mapping,
        )  # fmt: skip

    def to_metadata(self) -> dict[str, str]:
        """ONNX metadata_props are string to string: non-strings are stored as JSON."""
        values: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "classes": list(self.classes),
            "input_size": [self.input_height, self.input_width],
            "resize_shorter": self.resize_shorter,
            "mean": list(self.mean),
            "std": list(self.std),
            "arch": self.arch,
            "created": self.created,
            "val_accuracy": self.val_accuracy,
            "dataset": self.dataset,
            "training": self.training,
            "frame_mapping": self.frame_mapping,
            "precision": self.precision,
            "derived": self.derived,
        }
        return {
            KEY_PREFIX + key: value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            for key, value in values.items()
        }

    @staticmethod
    def from_metadata(metadata: dict[str, str]) -> ModelContract:
        def get(key: str, required: bool = True) -> Any:
            raw = metadata.get(KEY_PREFIX + key)
            if raw is None:
                if required:
                    raise ModelFormatError(
                        f"metadata {KEY_PREFIX + key} is missing: not exported by train-vr?"
                    )
                return None
            if key in ("format", "name", "version", "arch", "created", "frame_mapping", "precision"):
                return raw
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                raise ModelFormatError(f"metadata {KEY_PREFIX + key} is not JSON: {raw[:80]!r}") from None

        if get("format") != FORMAT_NAME:
            raise ModelFormatError(f"metadata {KEY_PREFIX}format is not {FORMAT_NAME!r}")
        version = get("format_version")
        if version != FORMAT_VERSION:
            raise ModelFormatError(f"model format version {version!r}; this server reads {FORMAT_VERSION}")
        classes = get("classes")
        if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes)):
            raise ModelFormatError("metadata vr.classes must be a non-empty list of names")
        if len(set(classes)) != len(classes):
            raise ModelFormatError("metadata vr.classes has duplicates")
        size = get("input_size")
        if not (isinstance(size, list) and len(size) == 2 and all(_positive_int(v) for v in size)):
            raise ModelFormatError("metadata vr.input_size must be [height, width]")
        resize_shorter = get("resize_shorter")
        if not _positive_int(resize_shorter) or resize_shorter < max(size):
            raise ModelFormatError("metadata vr.resize_shorter must be an integer >= the input size")
        mean, std = get("mean"), get("std")
        for key, value in (("mean", mean), ("std", std)):
            if not (
                isinstance(value, list)
                and len(value) == 3
                and all(isinstance(v, (int, float)) for v in value)
            ):
                raise ModelFormatError(f"metadata vr.{key} must be three numbers")
        accuracy = get("val_accuracy", required=False)
        mapping = get("frame_mapping", required=False) or "centre_crop"
        if mapping not in FRAME_MAPPINGS:
            raise ModelFormatError(
                f"metadata vr.frame_mapping {mapping!r} is not one of {list(FRAME_MAPPINGS)}"
            )
        precision = get("precision", required=False) or "float32"
        if precision not in PRECISIONS:
            raise ModelFormatError(f"metadata vr.precision {precision!r} is not one of {list(PRECISIONS)}")
        return ModelContract(
            name=get("name"),
            version=get("version"),
            classes=tuple(classes),
            input_height=size[0],
            input_width=size[1],
            resize_shorter=resize_shorter,
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
            arch=get("arch", required=False) or "",
            created=get("created", required=False) or "",
            val_accuracy=float(accuracy) if isinstance(accuracy, (int, float)) else None,
            dataset=get("dataset", required=False) or {},
            training=get("training", required=False) or {},
            frame_mapping=mapping,
            precision=precision,
            derived=get("derived", required=False) or {},
        )


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
