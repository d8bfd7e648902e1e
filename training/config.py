"""The full training configuration: one dataclass, stored in checkpoints, metrics.json and the model.

Every default is written once, as a field default here; the CLI's argparse defaults are read from
TRAIN_DEFAULTS. Pure Python so the CLI can build it (and `--help` works) without torch.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from vr_recognition.server.model_format import FRAME_MAPPINGS
from vr_recognition.training.errors import ConfigError

# The serving default: resize the shorter side to 256 and centre-crop 224 (ratio 0.875).
RESIZE_RATIO = 256 / 224


@dataclass
class TrainConfig:
    data: str
    out: str
    arch: str = "resnet18"
    weights: str = "imagenet"  # imagenet | none | PATH
    epochs: int = 10
    batch_size: int = 32
    img_size: int = 224
    resize_shorter: int = 0  # 0: round(img_size * 256 / 224)
    # How a frame of any shape becomes the square input, in training, validation and serving alike
    # (the exported contract's vr.frame_mapping): centre_crop | stretch.
    frame_mapping: str = "centre_crop"
    val_fraction: float = 0.2
    seed: int = 0
    name: str = ""  # model name in the ONNX metadata; default: the run folder's name
    # fine-tuning recipe
    freeze: str = "none"  # none | head-only | <stage>: that stage and all before it are frozen
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.01  # head learning rate
    backbone_lr_mult: float | None = None  # None: 0.1 with pretrained weights, 1.0 from scratch
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # step | poly | cosine
    step_size: int = 7  # epochs, for the step schedule
    gamma: float = 0.1  # step schedule factor
    poly_power: float = 0.9
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.1
    l2sp: float = 0.0  # lambda of lambda * ||theta - theta_pre||^2 on the backbone
    patience: int = 0  # early stopping after this many epochs without a better val accuracy; 0 = off
    # augmentation
    jpeg_quality: tuple[int, int] = (60, 95)
    blur_probability: float = 0.3
    colour_jitter: float = 0.25
    crop_scale: tuple[float, float] = (0.35, 1.0)
    flip: bool = True
    # runtime (not part of the recipe; may change on --resume)
    device: str = "auto"
    workers: int = -1  # -1: 0 on CPU, 4 on CUDA
    amp: bool = True  # only ever used on CUDA
    stop_after_epochs: int = 0  # stop this invocation after N epochs (time-sliced jobs); 0 = never
    export: str = ""
    export_fp16: bool = False
    opset: int = 18

    RUNTIME_FIELDS = ("device", "workers", "amp", "stop_after_epochs", "export", "export_fp16", "opset")

    def __post_init__(self) -> None:
        if not self.resize_shorter:
            self.resize_shorter = round(self.img_size * RESIZE_RATIO)
        self.jpeg_quality = tuple(self.jpeg_quality)  # type: ignore[assignment]
        self.crop_scale = tuple(self.crop_scale)  # type: ignore[assignment]
        if self.resize_shorter < self.img_size:
            raise ConfigError("--resize-shorter must be >= --img-size")
        if self.frame_mapping not in FRAME_MAPPINGS:
            raise ConfigError(f"--frame-mapping must be one of {', '.join(FRAME_MAPPINGS)}")
        for name in ("epochs", "batch_size", "img_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")

    @property
    def pretrained(self) -> bool:
        return self.weights != "none"

    @property
    def effective_backbone_lr_mult(self) -> float:
        if self.backbone_lr_mult is not None:
            return self.backbone_lr_mult
        return 0.1 if self.pretrained else 1.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in values.items() if k in known})


# Field name -> default, for every field that has one (all but data and out).
TRAIN_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
