"""The module that is trained and exported: uint8 NHWC RGB frames in, logits or probabilities out.

Normalisation (cast, /255, mean/std, NHWC -> NCHW) is part of the forward pass, so it ends up inside the
ONNX graph and the server feeds the preprocessed uint8 crop as it is (docs/model-format.md). Training
optimises logits; export switches the output to softmax probabilities.
"""

from __future__ import annotations

import torch
from torch import nn


class ServingModel(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.output_probabilities = False
        self.compute_dtype = torch.float32  # float16 for --fp16 exports

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        x = ((x - self.mean) / self.std).to(self.compute_dtype)
        logits = self.backbone(x)
        return torch.softmax(logits, dim=-1) if self.output_probabilities else logits
