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
    batch_size: int | None = None  # from the recipe; 0: chosen from the data and min_steps
    img_size: int = 224
    resize_shorter: int = 0  # 0: round(img_size * 256 / 224)
    # How a frame of any shape becomes the square input, in training, validation and serving alike
    # (the exported contract's vr.frame_mapping): centre_crop | stretch.
    frame_mapping: str = "centre_crop"
    val_fraction: float = 0.2
    seed: int = 0
    # Unity Perception (SOLO) data (training/solo.py): a sample per labelled 2D box, cropped square with
    # solo_margin of the box side added on each side, or per frame, by its dominant label: boxes | frames
    solo_samples: str = "boxes"
    solo_margin: float = 0.1
    name: str = ""  # model name in the ONNX metadata; default: the run folder's name
    # fine-tuning recipe: --recipe names a set of values (RECIPES below); a field left at None takes
    # the recipe's value, a flag given on the command line wins
    recipe: str = "default"  # default | seed
    freeze: str = "none"  # none | head-only | <stage>: that stage and all before it are frozen
    optimizer: str | None = None  # sgd | adamw
    lr: float | None = None  # head learning rate (per REFERENCE_BATCH images with lr_scaling linear)
    lr_scaling: str | None = None  # linear: lr scales with the batch size | none
    backbone_lr_mult: float | None = None  # None: 0.1 with pretrained weights, 1.0 from scratch
    momentum: float | None = None
    weight_decay: float | None = None
    schedule: str | None = None  # step | poly | cosine
    step_size: int | None = None  # epochs, for the step schedule
    gamma: float | None = None  # step schedule factor
    poly_power: float = 0.9
    warmup_epochs: float | None = None
    label_smoothing: float | None = None
    min_steps: int | None = None  # with batch_size 0: the batch is chosen to give at least this many steps
    bn_stats: str | None = None  # train | frozen (stored statistics; affine still trains) | auto
    head_init: str | None = None  # default (the library's) | zero
    probe_epochs: float | None = None  # epochs that train the head alone before the backbone joins (LP-FT)
    clip_grad_norm: float | None = None  # largest gradient norm a step applies; 0 = no clipping
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
        if self.recipe not in RECIPES:
            raise ConfigError(f"--recipe must be one of {', '.join(RECIPES)}")
        for name, value in RECIPES[self.recipe].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.bn_stats == "auto":
            self.bn_stats = "frozen" if self.pretrained else "train"
        if not self.resize_shorter:
            self.resize_shorter = round(self.img_size * RESIZE_RATIO)
        self.jpeg_quality = tuple(self.jpeg_quality)  # type: ignore[assignment]
        self.crop_scale = tuple(self.crop_scale)  # type: ignore[assignment]
        if self.resize_shorter < self.img_size:
            raise ConfigError("--resize-shorter must be >= --img-size")
        if self.frame_mapping not in FRAME_MAPPINGS:
            raise ConfigError(f"--frame-mapping must be one of {', '.join(FRAME_MAPPINGS)}")
        for name in ("epochs", "img_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
        if self.batch_size < 0:
            raise ConfigError("--batch-size must be >= 1, or 0 to choose it from --min-steps")
        for name, value, choices in (
            ("lr_scaling", self.lr_scaling, ("linear", "none")),
            ("bn_stats", self.bn_stats, ("train", "frozen")),
            ("optimizer", self.optimizer, ("sgd", "adamw")),
            ("schedule", self.schedule, ("step", "poly", "cosine")),
            ("head_init", self.head_init, ("default", "zero")),
        ):
            if value not in choices:
                raise ConfigError(f"--{name.replace('_', '-')} must be one of {', '.join(choices)}")

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
        stored = {k: v for k, v in values.items() if k in known}
        if "recipe" not in stored:  # written before recipes existed: its run trained as BEFORE_RECIPES
            stored = {**BEFORE_RECIPES, **stored}
        return TrainConfig(**stored)


# What --recipe sets (each value can still be given as a flag).
RECIPES: dict[str, dict[str, Any]] = {
    # Measured on few-shot vr-sim renders and MNIST (docs/training.md, "Choosing the default recipe"):
    # enough optimizer steps for any dataset size (a smaller batch when the data is small), a learning rate
    # that scales with the batch, pretrained batch-norm statistics kept, and a zero head.
    "default": {
        "optimizer": "sgd",
        "lr": 0.1,
        "lr_scaling": "linear",
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": "cosine",
        "step_size": 7,
        "gamma": 0.1,
        "warmup_epochs": 1.0,
        "label_smoothing": 0.1,
        "batch_size": 0,
        "min_steps": 200,
        "bn_stats": "auto",
        "head_init": "zero",
        "probe_epochs": 0.0,
        "clip_grad_norm": 2.0,
    },
    # The articles' plain recipe (PyTorch's transfer-learning tutorial): SGD lr 0.001, momentum 0.9,
    # StepLR every 7 epochs by 0.1, batch 4, one learning rate for every layer, no weight decay.
    "seed": {
        "optimizer": "sgd",
        "lr": 0.001,
        "lr_scaling": "none",
        "backbone_lr_mult": 1.0,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "schedule": "step",
        "step_size": 7,
        "gamma": 0.1,
        "warmup_epochs": 0.0,
        "label_smoothing": 0.0,
        "batch_size": 4,
        "min_steps": 0,
        "bn_stats": "train",
        "head_init": "default",
        "probe_epochs": 0.0,
        "clip_grad_norm": 0.0,
    },
}
# A config stored before --recipe existed trained like this where it names no value.
BEFORE_RECIPES: dict[str, Any] = {
    "recipe": "default",
    "lr_scaling": "none",
    "min_steps": 0,
    "bn_stats": "train",
    "head_init": "default",
    "probe_epochs": 0.0,
    "clip_grad_norm": 0.0,
}

# Field name -> default, for every field that has one (all but data and out).
TRAIN_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
