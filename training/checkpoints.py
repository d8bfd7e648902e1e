"""The checkpoint record, and checkpoint files written atomically.

A Checkpoint is what best.pt and last.pt hold: the weights, the TrainConfig they were trained with and
everything export needs (classes, mean/std, starting weights, dataset summary); last.pt adds the
ResumeState that --resume continues from. On disk it is a plain dict of tensors, lists, strings and
numbers (to_dict / from_dict), the same keys as before the record existed, so older files still load
and best.pt still loads with torch.load(weights_only=True) (--weights PATH reads it that way).

A kill mid-write leaves the previous file intact, never half a file: torch.save goes to a temporary
file in the same folder, which os.replace then moves onto the real name.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vr_recognition.training.config import TrainConfig
from vr_recognition.training.errors import CheckpointError

CHECKPOINT_FORMAT = "train-vr-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class ResumeState:
    """What --resume needs beyond the weights (last.pt only)."""

    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] | None  # None in files written before the gradient scaler was saved
    history: list[dict[str, Any]]  # one metrics row per finished epoch
    best: dict[str, Any]  # epoch, val_accuracy and val_loss of the best epoch so far
    stale_epochs: int  # epochs since `best` improved (early stopping)
    rng: dict[str, Any]  # rng_states()


@dataclass
class Checkpoint:
    config: TrainConfig
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str  # what the starting weights were (Backbone.weights)
    dataset: dict[str, Any]  # DatasetIndex.summary()
    epoch: int  # epochs finished when these weights were saved
    val_accuracy: float | None
    model: dict[str, torch.Tensor]  # ServingModel.state_dict()
    resume: ResumeState | None = None
    # Set by `train-vr prune`: the source, ratio and the source's accuracy. The channel counts differ from
    # the arch's, so the network is rebuilt from the tensors' shapes (backbones.resize_to_state).
    pruning: dict[str, Any] | None = None

    @property
    def arch(self) -> str:
        return self.config.arch

    @property
    def img_size(self) -> int:
        return self.config.img_size

    @property
    def resize_shorter(self) -> int:
        return self.config.resize_shorter

    def to_dict(self) -> dict[str, Any]:
        """The dict torch.save writes. arch, img_size and resize_shorter are also in `config`; they stay
        at the top level as well so the file keeps the layout of version 1."""
        payload: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "arch": self.arch,
            "classes": list(self.classes),
            "img_size": self.img_size,
            "resize_shorter": self.resize_shorter,
            "mean": list(self.mean),
            "std": list(self.std),
            "weights": self.weights,
            "config": self.config.to_json(),
            "dataset": self.dataset,
            "model": self.model,
            "epoch": self.epoch,
            "val_accuracy": self.val_accuracy,
        }
        if self.pruning is not None:
            payload["pruning"] = self.pruning
        if self.resume is not None:
            # Not dataclasses.asdict: that would deep-copy every optimizer tensor.
            resume = {f.name: getattr(self.resume, f.name) for f in fields(ResumeState)}
            if resume["scaler"] is None:
                del resume["scaler"]
            payload.update(resume)
        return payload

    @staticmethod
    def from_dict(payload: Any, source: str = "checkpoint") -> Checkpoint:
        """The record from a loaded file; `source` (the path) names it in errors."""
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{source}: not a train-vr checkpoint")
        if payload.get("version", 0) > CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{source}: checkpoint version {payload['version']} is newer than this train-vr"
            )
        resume = None
        if "optimizer" in payload:
            resume = ResumeState(
                optimizer=payload["optimizer"],
                scheduler=payload["scheduler"],
                scaler=payload.get("scaler"),
                history=payload["history"],
                best=payload["best"],
                stale_epochs=payload["stale_epochs"],
                rng=payload["rng"],
            )
        return Checkpoint(
            config=TrainConfig.from_json(payload["config"]),
            classes=tuple(payload["classes"]),
            mean=tuple(payload["mean"]),
            std=tuple(payload["std"]),
            weights=payload.get("weights", ""),
            dataset=payload["dataset"],
            epoch=payload["epoch"],
            val_accuracy=payload.get("val_accuracy"),
            model=payload["model"],
            resume=resume,
            pruning=payload.get("pruning"),
        )


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then os.replace onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(checkpoint.to_dict(), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    # weights_only=False: last.pt holds the Python and numpy RNG states, which the safe loader refuses.
    return Checkpoint.from_dict(torch.load(path, map_location="cpu", weights_only=False), str(path))


def rng_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
