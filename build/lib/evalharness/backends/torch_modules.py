"""Torch modules the backends wrap a model with (imported when a torch model is built)."""

from __future__ import annotations

import torch
from torch import nn


class RawPixelNormalize(nn.Module):
    """(x - 255 mean) / (255 std) on raw 0..255 NCHW pixels: normalization inside the model."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
