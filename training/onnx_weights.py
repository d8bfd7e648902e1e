"""A train-vr checkpoint rebuilt from a float32 .onnx file that train-vr exported.

Why: a shipped model should be prunable (`train-vr prune --model exported_models/default.onnx`) even
when its run folder is gone; the demo model's best.pt is not in the repository, only its .onnx.

The file holds everything a checkpoint does: the training config, classes, mean/std and dataset summary
in the metadata, and the weights as initializers named `backbone.<module>.weight`. The exporter folded
each batch norm into the convolution before it (`<conv>.weight` scaled, `<conv>.weight_bias` added), so
the batch norms are unfolded with statistics measured on training frames: with z the folded
convolution's output (bias-free), mean mu and std sigma over those frames, the batch norm gets
running_mean = mu, running_var = sigma^2 - eps, weight = sigma, bias = mu + folded bias. In eval mode it
then computes exactly z + folded bias (the exported function), and in training mode, where batch
statistics replace the running ones, nearly the same: fine-tuning starts from the exported model, not
from a network whose batch norms suddenly renormalise everything. The rebuilt model is checked against
onnxruntime on validation frames before it is returned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME, ModelContract
from vr_recognition.training.backbones import build_backbone
from vr_recognition.training.checkpoints import Checkpoint
from vr_recognition.training.config import TrainConfig
from vr_recognition.training.data_sources import evenly_spread, index_dataset
from vr_recognition.training.errors import CheckpointError, ModelFileError
from vr_recognition.training.model_files import read_contract
from vr_recognition.training.model_inputs import serving_inputs
from vr_recognition.training.serving_model import ServingModel

STATISTICS_FRAMES = 256  # training frames for the batch-norm statistics (~10 s on 2 cores at 224 px)
CHECK_FRAMES = 64
MAX_PROBABILITY_DIFFERENCE = 1e-3  # float32 rebuilt vs the file: ~1e-6 when the mapping is right
MIN_VARIANCE = 1e-4  # a channel whose conv output barely varies keeps a tiny std (never eps or below)
PREFIX = "backbone."


def conv_bn_pairs(module: nn.Module) -> list[tuple[str, nn.Conv2d, nn.BatchNorm2d | None]]:
    """Each convolution with the batch norm registered right after it (None if another layer follows):
    the order torchvision builds conv -> bn in (ResNet blocks, MobileNet's Conv2dNormActivation)."""
    modules = [(name, m) for name, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    pairs = []
    for position, (name, layer) in enumerate(modules):
        if isinstance(layer, nn.Conv2d):
            following = modules[position + 1][1] if position + 1 < len(modules) else None
            pairs.append((name, layer, following if isinstance(following, nn.BatchNorm2d) else None))
    return pairs


def onnx_initializers(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _tensor(weights: dict[str, np.ndarray], name: str, path: Path) -> torch.Tensor:
    if name not in weights:
        raise CheckpointError(f"{path}: no initializer {name!r}; not a train-vr export of this arch")
    return torch.from_numpy(np.array(weights[name], dtype=np.float32))


def load_folded_weights(module: nn.Module, weights: dict[str, np.ndarray], path: Path) -> None:
    """Folded conv weights in, each following batch norm set to identity + folded bias (exact in eval)."""
    with torch.no_grad():
        for name, conv, norm in conv_bn_pairs(module):
            conv.weight.copy_(_tensor(weights, f"{PREFIX}{name}.weight", path))
            if norm is None:
                if conv.bias is not None:
                    conv.bias.copy_(_tensor(weights, f"{PREFIX}{name}.bias", path))
                continue
            norm.weight.fill_(1.0)
            norm.bias.copy_(_tensor(weights, f"{PREFIX}{name}.weight_bias", path))
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
        for name, layer in module.named_modules():
            if isinstance(layer, nn.Linear):
                layer.weight.copy_(_tensor(weights, f"{PREFIX}{name}.weight", path))
                layer.bias.copy_(_tensor(weights, f"{PREFIX}{name}.bias", path))


def unfold_batch_norms(model: ServingModel, frames: torch.Tensor) -> None:
    """Give each batch norm the statistics of its input over `frames` without changing the eval-mode
    function (see the module docstring)."""
    norms = [norm for _, _, norm in conv_bn_pairs(model.backbone) if norm is not None]
    sums = {id(n): [0.0, 0.0, 0] for n in norms}

    def record(norm, inputs):
        z = inputs[0].detach().double()  # the folded convolution's output, before the folded bias
        entry = sums[id(norm)]
        entry[0] = entry[0] + z.sum(dim=(0, 2, 3))
        entry[1] = entry[1] + (z * z).sum(dim=(0, 2, 3))
        entry[2] += z.numel() // z.shape[1]

    hooks = [norm.register_forward_pre_hook(record) for norm in norms]
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, len(frames), 32):
                model(frames[start : start + 32])
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        for norm in norms:
            total, squares, count = sums[id(norm)]
            mean = total / count
            variance = (squares / count - mean * mean).clamp(min=MIN_VARIANCE)
            folded_bias = norm.bias.detach().double().clone()
            norm.running_mean.copy_(mean.float())
            norm.running_var.copy_((variance - norm.eps).float())
            norm.weight.copy_(variance.sqrt().float())
            norm.bias.copy_((mean + folded_bias).float())


def check_against_file(model: ServingModel, path: Path, frames: np.ndarray) -> float:
    """Max abs probability difference, rebuilt torch model vs onnxruntime on the file; CheckpointError
    when it is not the same function."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run([OUTPUT_NAME], {INPUT_NAME: frames})[0]
    model.eval()
    model.output_probabilities = True
    try:
        with torch.no_grad():
            actual = model(torch.from_numpy(frames)).numpy()
    finally:
        model.output_probabilities = False
    difference = float(np.abs(actual - expected).max())
    if difference > MAX_PROBABILITY_DIFFERENCE:
        raise CheckpointError(
            f"{path}: the network rebuilt from its weights differs from the file by {difference:.3g} "
            f"(max {MAX_PROBABILITY_DIFFERENCE}); use the run's checkpoint instead"
        )
    return difference


def config_of(contract: ModelContract, path: Path, data: str) -> TrainConfig:
    recorded = contract.training.get("config") if isinstance(contract.training, dict) else None
    if not recorded or contract.arch is None:
        raise ModelFileError(f"{path}: no training record in its metadata; not exported by train-vr")
    return TrainConfig.from_json({**recorded, "data": str(data), "out": ""})


def checkpoint_from_onnx(path: str | Path, data: str | Path) -> Checkpoint:
    """The Checkpoint of a float32 train-vr export; `data` is the dataset it was trained on (the batch
    norm statistics come from its training split, the check from its validation split)."""
    path = Path(path)
    contract = read_contract(path)
    if contract.precision != "float32":
        raise ModelFileError(f"{path}: is {contract.precision}; start from the float32 model")
    config = config_of(contract, path, str(data))
    backbone = build_backbone(config.arch, len(contract.classes), weights="none")
    model = ServingModel(backbone.module, contract.mean, contract.std)
    load_folded_weights(backbone.module, onnx_initializers(path), path)
    index = index_dataset(
        data,
        config.val_fraction,
        config.seed,
        solo_samples=config.solo_samples,
        solo_margin=config.solo_margin,
    )
    train_frames, _ = serving_inputs(evenly_spread(index.train, STATISTICS_FRAMES), contract)
    unfold_batch_norms(model, train_frames)
    val_frames, _ = serving_inputs(index.val[:CHECK_FRAMES], contract)
    difference = check_against_file(model, path, val_frames.numpy())
    print(
        f"rebuilt {path.name} as a {config.arch} checkpoint (max abs difference {difference:.2g})", flush=True
    )
    training = contract.training
    return Checkpoint(
        config=config,
        classes=contract.classes,
        mean=contract.mean,
        std=contract.std,
        weights=f"file {path.name} (rebuilt from the ONNX weights)",
        dataset=contract.dataset,
        epoch=int(training.get("best_epoch") or 0),
        val_accuracy=contract.val_accuracy,
        model={k: v.detach().clone() for k, v in model.state_dict().items()},
    )
