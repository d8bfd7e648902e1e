"""What the model is fed, as tensors: augmented training frames, and validation frames preprocessed
exactly as vr-serve preprocesses them.

The samples come from data_sources.index_dataset (which finds and checks the files on disk; no torch
there). Validation frames go through server.preprocess.preprocess_jpeg, byte for byte what vr-serve
does to a JPEG frame, so the accuracy train-vr reports is the accuracy the exported model has behind the
server; the export's parity check reuses the same frames.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from vr_recognition.server.model_format import ModelContract
from vr_recognition.server.preprocess import preprocess_jpeg
from vr_recognition.training.augment import StreamAugmentation
from vr_recognition.training.data_sources import Sample, sample_jpeg_bytes


class AugmentedFrames(Dataset):
    """(uint8 HxWx3 tensor, label); the augmentation of item i in epoch e depends only on (seed, e, i)."""

    def __init__(self, samples: list[Sample], augmentation: StreamAugmentation, seed: int) -> None:
        self.samples = samples
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        pixels = self.augmentation(sample_jpeg_bytes(sample), rng)
        return torch.from_numpy(pixels), sample.label


def serving_inputs(samples: list[Sample], contract: ModelContract) -> tuple[torch.Tensor, torch.Tensor]:
    """All validation frames as the server would feed them: uint8 [N, H, W, 3] and labels [N]."""
    images = np.stack([preprocess_jpeg(sample_jpeg_bytes(s), contract) for s in samples])
    labels = np.array([s.label for s in samples], dtype=np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


def contract_for(
    classes: tuple[str, ...],
    img_size: int,
    resize_shorter: int,
    name: str = "train-vr",
    frame_mapping: str = "centre_crop",
) -> ModelContract:
    """The serving geometry of a model being trained (used for validation preprocessing)."""
    return ModelContract(
        name=name,
        version="training",
        classes=classes,
        input_height=img_size,
        input_width=img_size,
        resize_shorter=resize_shorter,
        frame_mapping=frame_mapping,
    )
