"""The fine-tuning recipe: partial freezing, discriminative learning rates, schedules and L2-SP.

From the product's recipe: replace the head, train the backbone at a lower learning rate than the head
(1/10 by default), SGD with momentum (or AdamW), a decaying schedule (StepLR, poly α·(1−t/T)^γ, or
cosine with warmup), and L2-SP: λ‖θ−θpre‖² pulls the backbone toward its starting weights instead of
toward zero, keeping what pretraining learnt when the new dataset is small.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from vr_recognition.training.backbones import Backbone
from vr_recognition.training.config import TrainConfig
from vr_recognition.training.errors import ConfigError

REFERENCE_BATCH = 32  # --lr is the head's rate at this many images per step (see scaled_lr)
MIN_AUTO_BATCH, MAX_AUTO_BATCH = 8, 32  # the range --batch-size 0 picks from


def frozen_prefixes(backbone: Backbone, freeze: str) -> tuple[str, ...]:
    """Module-name prefixes that `--freeze` keeps fixed: none, everything but the head, or up to a stage."""
    names = [name for name, _ in backbone.stages]
    if freeze == "none":
        return ()
    if freeze == "head-only":
        return tuple(prefix for _, prefixes in backbone.stages for prefix in prefixes)
    if freeze not in names:
        raise ConfigError(
            f"--freeze {freeze!r} is not a stage of {backbone.arch}; choose none, head-only or one of {names}"
        )
    last = names.index(freeze)
    return tuple(prefix for _, prefixes in backbone.stages[: last + 1] for prefix in prefixes)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def apply_freeze(backbone: Backbone, freeze: str) -> tuple[str, ...]:
    """Turn off gradients of the frozen stages; returns their prefixes (for keep_frozen_bn_in_eval)."""
    prefixes = frozen_prefixes(backbone, freeze)
    for name, parameter in backbone.module.named_parameters():
        parameter.requires_grad_(not _under(name, prefixes))
    return prefixes


def keep_frozen_bn_in_eval(backbone: Backbone, prefixes: tuple[str, ...], all_stats: bool = False) -> None:
    """Frozen stages keep their batch-norm statistics too (call after model.train()). `all_stats`
    (--bn-stats frozen): every batch norm normalises with its stored statistics and keeps them, while its
    scale and shift still train. Pretrained statistics come from millions of images; re-estimating them
    from batches of eight few-shot frames only adds noise, and a batch of eight is what a short dataset
    needs to get enough optimizer steps."""
    for name, module in backbone.module.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and (
            all_stats or (prefixes and _under(name, prefixes))
        ):
            module.eval()


def zero_head(backbone: Backbone) -> None:
    """Zero the new head's weight and bias (--head-init zero): every class starts at the same score, so
    the first steps fit the head to the pretrained features instead of sending a random head's large,
    wrong gradients into the backbone (the effect linear-probe-then-fine-tune is after, at no extra
    cost)."""
    head = backbone.module.get_submodule(backbone.head)
    with torch.no_grad():
        head.weight.zero_()
        if head.bias is not None:
            head.bias.zero_()


def resolve_batch_size(config: TrainConfig, train_samples: int, ranks: int = 1) -> int:
    """The per-rank batch: --batch-size, or with --batch-size 0 the largest batch up to MAX_AUTO_BATCH
    that still gives --min-steps optimizer steps in --epochs epochs (never below MIN_AUTO_BATCH).

    A schedule counted in epochs starves small datasets: 140 images at batch 32 for 10 epochs are 40
    steps. Halving the batch doubles the steps for the same compute."""
    if config.batch_size:
        return config.batch_size
    per_rank = max(1, math.ceil(train_samples / ranks))
    fitting = (per_rank * config.epochs) // max(1, config.min_steps)
    return max(MIN_AUTO_BATCH, min(MAX_AUTO_BATCH, fitting))


def scaled_lr(config: TrainConfig) -> float:
    """The head learning rate at this run's batch size: --lr is for REFERENCE_BATCH images per step and
    scales linearly with the batch (--lr-scaling linear), or is used as given (none)."""
    if config.lr_scaling == "none" or not config.batch_size:  # 0: not resolved yet (no data seen)
        return config.lr
    return config.lr * config.batch_size / REFERENCE_BATCH


def split_parameters(backbone: Backbone) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Trainable (backbone, head) parameters."""
    head_prefix = backbone.head + "."
    body, head = [], []
    for name, parameter in backbone.module.named_parameters():
        if parameter.requires_grad:
            (head if name.startswith(head_prefix) else body).append(parameter)
    return body, head


def build_optimizer(backbone: Backbone, config: TrainConfig) -> torch.optim.Optimizer:
    """Two parameter groups: backbone at lr * backbone_lr_mult, head at lr.

    With L2-SP the backbone gets no weight decay (the L2-SP term replaces it, as in the L2-SP paper);
    the new head keeps ordinary weight decay.
    """
    body, head = split_parameters(backbone)
    body_decay = 0.0 if config.l2sp > 0 else config.weight_decay
    lr = scaled_lr(config)
    groups = [
        {"params": head, "lr": lr, "weight_decay": config.weight_decay, "name": "head"},
    ]
    if body:
        groups.insert(
            0,
            {
                "params": body,
                "lr": lr * config.effective_backbone_lr_mult,
                "weight_decay": body_decay,
                "name": "backbone",
            },
        )
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=False)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ConfigError(f"unknown --optimizer {config.optimizer!r}; choose sgd or adamw")


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of each group's base learning rate at optimizer step t (stepped every batch).

    step:   gamma ** (epoch // step_size)          (torch StepLR's schedule)
    poly:   (1 - t / T) ** poly_power              (α·(1−t/T)^γ)
    cosine: 0.5 * (1 + cos(pi * t / T))
    All after an optional linear warmup of warmup_epochs.
    """
    total = max(1, config.epochs * steps_per_epoch)
    warmup = round(config.warmup_epochs * steps_per_epoch)
    if config.schedule not in ("step", "poly", "cosine"):
        raise ConfigError(f"unknown --schedule {config.schedule!r}; choose step, poly or cosine")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "step":
            return config.gamma ** ((step // steps_per_epoch) // max(1, config.step_size))
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if config.schedule == "poly":
            return (1.0 - progress) ** config.poly_power
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def group_factors(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> list[Callable[[int], float]]:
    """One learning-rate multiplier per parameter group, for LambdaLR: the schedule for the head, and for
    the backbone the same after --probe-epochs of zero (linear probe, then fine-tune: LP-FT)."""
    factor = lr_factor(config, steps_per_epoch)
    probe = round(config.probe_epochs * steps_per_epoch)

    def backbone(step: int) -> float:
        return 0.0 if step < probe else factor(step)

    return [backbone if group["name"] == "backbone" else factor for group in optimizer.param_groups]


class L2SP:
    """λ Σ‖θ − θpre‖² over the trainable backbone parameters, θpre copied when this object is made."""

    def __init__(self, backbone: Backbone, strength: float) -> None:
        self.strength = strength
        body, _ = split_parameters(backbone)
        self.pairs = [(p, p.detach().clone()) for p in body] if strength > 0 else []

    def penalty(self) -> torch.Tensor | float:
        if not self.pairs:
            return 0.0
        return self.strength * sum(((p - start) ** 2).sum() for p, start in self.pairs)
