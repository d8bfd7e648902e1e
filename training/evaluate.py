"""`train-vr evaluate`: the accuracy of an .onnx file as vr-serve would score it, and the accuracy gate
that `quantize` and pruned exports pass through.

Frames go wire frame -> server preprocessing -> onnxruntime (training/serving_eval.py), so the figure is
the served accuracy of that exact file, whatever its precision. No torch on this path: a serving host
can check a model it was handed. The split is the one the model was trained with: `val_fraction` and
`seed` come from the file's `vr.training.config` unless given (datasets with a fixed split ignore them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vr_recognition.server.model_format import ModelContract
from vr_recognition.training import reports
from vr_recognition.training.config import TRAIN_DEFAULTS
from vr_recognition.training.data_sources import DatasetIndex, Sample, index_dataset
from vr_recognition.training.errors import AccuracyDropError, DatasetError
from vr_recognition.training.serving_eval import load_model, predict

SPLITS = ("val", "train", "all")
# A variant may lose at most this much validation accuracy (1 pp) unless --allow-accuracy-drop is given.
MAX_ACCURACY_DROP = 0.01


@dataclass
class Evaluation:
    """What `train-vr evaluate` prints and writes with --json."""

    model: str  # file name
    model_name: str  # vr.name
    precision: str  # vr.precision
    data: str  # dataset folder name
    split: str
    frames: int
    accuracy: float
    classes: tuple[str, ...]
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]  # rows: true class, columns: predicted, in `classes` order

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["classes"] = list(self.classes)
        values["confusion_matrix"] = {
            "classes": list(self.classes),
            "rows_true_columns_predicted": values.pop("confusion"),
        }
        return values


def split_settings(
    contract: ModelContract, val_fraction: float | None, seed: int | None
) -> tuple[float, int]:
    """(val_fraction, seed): as given, else as the model was trained (vr.training.config), else defaults."""
    trained = contract.training.get("config", {}) if isinstance(contract.training, dict) else {}
    fraction = val_fraction if val_fraction is not None else trained.get("val_fraction")
    chosen_seed = seed if seed is not None else trained.get("seed")
    return (
        float(fraction if fraction is not None else TRAIN_DEFAULTS["val_fraction"]),
        int(chosen_seed if chosen_seed is not None else TRAIN_DEFAULTS["seed"]),
    )


def dataset_options(contract: ModelContract) -> dict[str, Any]:
    """How the model's training read a SOLO dataset (boxes or frames, margin), so that evaluating or
    calibrating on one reads the same samples; the defaults for models trained before SOLO support."""
    trained = contract.training.get("config", {}) if isinstance(contract.training, dict) else {}
    return {name: trained.get(name, TRAIN_DEFAULTS[name]) for name in ("solo_samples", "solo_margin")}


def samples_of(index: DatasetIndex, split: str) -> list[Sample]:
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    return {"val": index.val, "train": index.train, "all": index.train + index.val}[split]


def labels_in_model_order(index: DatasetIndex, samples: list[Sample], contract: ModelContract) -> np.ndarray:
    """Each sample's class as a column of the model's output; DatasetError for a class the model lacks."""
    position = {name: i for i, name in enumerate(contract.classes)}
    unknown = sorted({index.classes[s.label] for s in samples} - set(position))
    if unknown:
        raise DatasetError(
            f"{index.root}: class(es) {unknown} are not classes of the model ({list(contract.classes)})"
        )
    return np.array([position[index.classes[s.label]] for s in samples], dtype=np.int64)


def evaluate_model(
    model_path: str | Path,
    data: str | Path,
    *,
    split: str = "val",
    val_fraction: float | None = None,
    seed: int | None = None,
) -> Evaluation:
    """Top-1 accuracy, per-class precision/recall/F1 and the confusion matrix of `model_path` on a split
    of `data`, every frame through the serving path."""
    session, contract = load_model(model_path)
    fraction, chosen_seed = split_settings(contract, val_fraction, seed)
    index = index_dataset(data, fraction, chosen_seed, **dataset_options(contract))
    samples = samples_of(index, split)
    if not samples:
        raise DatasetError(f"{index.root}: the {split} split has no images")
    expected = labels_in_model_order(index, samples, contract)
    predicted = predict(session, contract, samples).argmax(axis=1)
    matrix = reports.confusion_matrix(expected, predicted, len(contract.classes))
    return Evaluation(
        model=Path(model_path).name,
        model_name=contract.name,
        precision=contract.precision,
        data=Path(data).name,
        split=split,
        frames=len(samples),
        accuracy=float((predicted == expected).mean()),
        classes=contract.classes,
        per_class=reports.per_class_scores(matrix, contract.classes),
        confusion=matrix.tolist(),
    )


def describe(evaluation: Evaluation) -> str:
    """The console report: accuracy, then one line per class."""
    lines = [
        f"{evaluation.model} ({evaluation.precision}) on {evaluation.data} {evaluation.split}: "
        f"accuracy {evaluation.accuracy:.2%} over {evaluation.frames} frames (serving path)",
        f"  {'class':<16} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}",
    ]
    for name, scores in evaluation.per_class.items():
        lines.append(
            f"  {name:<16} {scores['precision']:>9.3f} {scores['recall']:>7.3f} {scores['f1']:>6.3f} "
            f"{scores['support']:>8d}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class AccuracyCheck:
    """The source model's and a variant's validation accuracy on the same frames."""

    variant: str  # "int8", "pruned", ...
    source: float
    result: float
    frames: int
    max_drop: float = MAX_ACCURACY_DROP

    @property
    def drop_pp(self) -> float:
        return 100.0 * (self.source - self.result)

    @property
    def passes(self) -> bool:
        # "more than 1 pp" loses: the 1e-9 only absorbs float rounding (3 of 300 frames is exactly 1 pp).
        return self.source - self.result <= self.max_drop + 1e-9

    def line(self) -> str:
        return (
            f"validation accuracy, serving path, {self.frames} frames: source {self.source:.2%}, "
            f"{self.variant} {self.result:.2%} ({100 * (self.result - self.source):+.2f} pp; "
            f"allowed drop {100 * self.max_drop:g} pp)"
        )

    def to_json(self) -> dict[str, Any]:
        return {"frames": self.frames, "source": self.source, self.variant: self.result}


def enforce(check: AccuracyCheck, allow_drop: bool, out: str | Path) -> None:
    """Print the figures; AccuracyDropError when the variant loses too much and the user did not allow it."""
    print(check.line(), flush=True)
    if check.passes:
        return
    if allow_drop:
        print(f"writing {out} anyway (--allow-accuracy-drop)", flush=True)
        return
    raise AccuracyDropError(
        f"the {check.variant} model loses {check.drop_pp:.2f} pp of validation accuracy "
        f"({check.source:.2%} -> {check.result:.2%} on {check.frames} frames), more than "
        f"{100 * check.max_drop:g} pp; not writing {out}. Pass --allow-accuracy-drop to write it anyway"
    )
