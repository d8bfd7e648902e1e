"""`train-vr prune`: structured channel pruning of a trained model, then recovery fine-tuning.

A subcommand, not a `--prune` option of training: pruning acts on a model that is already trained (a
checkpoint, or a shipped .onnx rebuilt by onnx_weights.py), as export does, and the pruned network no
longer has the architecture `--arch` names, so it cannot share a run folder or `--resume` with the
training that made its source.

torch-pruning removes the same share of output channels from every prunable layer (group L2-magnitude
importance: a channel's score is the norm of all the weights that die with it, across the residual
connections that tie channels of several layers together; the classifier is kept whole), rounded to
multiples of `round_to` channels so the int8/fp32 kernels keep full SIMD lanes. The fine-tuning is
train-vr's own loop (trainer.run_epochs) on the smaller network: SGD, cosine schedule from `lr` to 0, one
rate for all layers, the source's augmentation. The checkpoints carry a `pruning` record (source,
ratio, parameters and MACs before and after, the source's validation accuracy), which export turns into
`vr.derived` after the accuracy gate.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from vr_recognition.training import reports
from vr_recognition.training.backbones import Backbone
from vr_recognition.training.checkpoints import Checkpoint, load_checkpoint
from vr_recognition.training.config import TrainConfig
from vr_recognition.training.distributed import World
from vr_recognition.training.errors import ConfigError, RunExistsError
from vr_recognition.training.evaluate import evaluate_model
from vr_recognition.training.export import export_model, network_from_checkpoint
from vr_recognition.training.serving_model import ServingModel
from vr_recognition.training.trainer import build_run, evaluate, final_report, resolve_device, run_epochs

METHOD = "torch-pruning MetaPruner: group L2-magnitude importance, same ratio in every layer, classifier kept"


@dataclass(frozen=True)
class PruneSettings:
    """The `train-vr prune` options."""

    out: str
    ratio: float
    checkpoint: str = ""  # a train-vr checkpoint, or
    model: str = ""  # a float32 .onnx exported by train-vr (needs data)
    data: str = ""  # default: the checkpoint's training data
    epochs: int = 2
    lr: float = 0.01
    batch_size: int | None = None  # default: the source's
    round_to: int = 8
    name: str = ""
    device: str = "auto"
    export: str = ""
    allow_accuracy_drop: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise ConfigError(
                f"--ratio must be between 0 and 1 (the share of channels removed), got {self.ratio}"
            )
        if self.epochs < 1:
            raise ConfigError("--epochs must be >= 1: a pruned network needs recovery fine-tuning")
        if self.lr <= 0 or self.round_to < 1:
            raise ConfigError("--lr must be > 0 and --round-to >= 1")
        if bool(self.checkpoint) == bool(self.model):
            raise ConfigError("give one source: --checkpoint or --model")


def load_source(settings: PruneSettings) -> Checkpoint:
    """The model to prune as a Checkpoint: the file itself, or rebuilt from a train-vr .onnx."""
    if settings.checkpoint:
        return load_checkpoint(settings.checkpoint)
    from vr_recognition.training.onnx_weights import checkpoint_from_onnx

    return checkpoint_from_onnx(settings.model, settings.data)


def prune_config(source: Checkpoint, settings: PruneSettings) -> TrainConfig:
    """The source's recipe (augmentation, image size, split, batch) with the fine-tuning settings."""
    return replace(
        source.config,
        data=settings.data or source.config.data,
        out=settings.out,
        weights=settings.checkpoint or settings.model,
        epochs=settings.epochs,
        lr=settings.lr,
        backbone_lr_mult=1.0,  # every layer lost channels: all of them have to adapt
        warmup_epochs=0.0,
        schedule="cosine",
        freeze="none",
        l2sp=0.0,
        patience=0,
        batch_size=settings.batch_size or source.config.batch_size,
        device=settings.device,
        stop_after_epochs=0,
        export="",
        export_fp16=False,
        name=settings.name or source_name(source),
    )


def source_name(source: Checkpoint) -> str:
    """The source's model name, as its export names it."""
    return source.config.name or Path(source.config.out).name


def prune_backbone(backbone: Backbone, ratio: float, img_size: int, round_to: int) -> dict[str, Any]:
    """Remove `ratio` of the channels of every prunable layer in place; parameters and MACs before/after."""
    try:
        import torch_pruning as tp
    except ModuleNotFoundError:
        raise ConfigError("train-vr prune needs torch-pruning: pip install torch-pruning") from None
    module = backbone.module.eval()
    example = torch.zeros(1, 3, img_size, img_size)
    macs_before, params_before = tp.utils.count_ops_and_params(module, example)
    pruner = tp.pruner.MetaPruner(
        module,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=[module.get_submodule(backbone.head)],
        round_to=round_to,
    )
    pruner.step()
    macs_after, params_after = tp.utils.count_ops_and_params(module, example)
    return {
        "params": {"source": int(params_before), "pruned": int(params_after)},
        "macs": {"source": int(macs_before), "pruned": int(macs_after)},
    }


def source_accuracy(settings: PruneSettings, source_model: ServingModel, run) -> dict[str, Any]:
    """The source's validation accuracy, the reference of the accuracy gate: through the serving path
    for an .onnx source; for a checkpoint, torch on the validation frames the trainer decoded, which are
    the serving preprocessing's output byte for byte (model_inputs.serving_inputs)."""
    if settings.model:
        evaluation = evaluate_model(
            settings.model, run.config.data, val_fraction=run.config.val_fraction, seed=run.config.seed
        )
        return {"accuracy": evaluation.accuracy, "frames": evaluation.frames, "measured": "serving path"}
    _, accuracy, _ = evaluate(source_model.to(run.device), run.val_images, run.val_labels, run.device)
    return {
        "accuracy": accuracy,
        "frames": len(run.val_labels),
        "measured": "torch on the serving-preprocessed validation frames",
    }


def prune(settings: PruneSettings) -> dict[str, Any]:
    """Prune, fine-tune into settings.out (best.pt, last.pt, metrics.json, plots), export if asked."""
    source = load_source(settings)
    config = prune_config(source, settings)
    out = Path(settings.out)
    if (out / "last.pt").exists():
        raise RunExistsError(f"{out} already holds a run; choose another --out")
    torch.manual_seed(config.seed)
    backbone, source_model = network_from_checkpoint(source)
    reference = copy.deepcopy(source_model)
    sizes = prune_backbone(backbone, settings.ratio, config.img_size, settings.round_to)
    backbone.weights = f"pruned from {Path(config.weights).name}"
    pruning: dict[str, Any] = {
        "from": {"file": Path(config.weights).name, "name": source_name(source), "epoch": source.epoch},
        "method": METHOD,
        "ratio": settings.ratio,
        "round_to": settings.round_to,
        **sizes,
        "fine_tune": {"epochs": settings.epochs, "lr": settings.lr, "schedule": "cosine"},
    }
    device = resolve_device(settings.device)
    run, progress = build_run(config, out, device, World(), None, backbone=backbone, pruning=pruning)
    pruning["source_accuracy"] = source_accuracy(settings, reference, run)
    _, pruning["accuracy_before_fine_tune"], _ = evaluate(run.model, run.val_images, run.val_labels, device)
    print(describe(pruning), flush=True)
    run_epochs(run, progress)
    metrics = final_report(run, progress)
    metrics["pruning"] = pruning
    reports.write_json_atomic(metrics, out / "metrics.json")
    if settings.export:
        metrics["export"] = export_model(
            run.model,
            load_checkpoint(out / "best.pt"),
            run.val_images.numpy(),
            settings.export,
            name=config.name,
            data_root=config.data,
            allow_accuracy_drop=settings.allow_accuracy_drop,
        )
    return metrics


def describe(pruning: dict[str, Any]) -> str:
    params, macs, source = pruning["params"], pruning["macs"], pruning["source_accuracy"]
    return (
        f"pruned {pruning['ratio']:.0%} of the channels: parameters {params['source'] / 1e6:.2f} M -> "
        f"{params['pruned'] / 1e6:.2f} M, MACs {macs['source'] / 1e9:.2f} G -> {macs['pruned'] / 1e9:.2f} G; "
        f"validation accuracy {source['accuracy']:.2%} before pruning, "
        f"{pruning['accuracy_before_fine_tune']:.2%} before fine-tuning"
    )
