"""The demo model's architecture: a small CNN for 64x64 inputs (about 10 MFLOPs, 60k params).

Deliberately cheap: the demo shows where preprocessing work goes, and a model that costs
far more than decoding would hide it. A stride-2 stem keeps the full-resolution cost low.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
    return [conv, nn.BatchNorm2d(cout), nn.ReLU()]


class DemoCNN(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_block(3, w, stride=2),
            nn.MaxPool2d(2),  # 64 -> 16
            *_block(w, 2 * w),
            nn.MaxPool2d(2),  # 16 -> 8
            *_block(2 * w, 4 * w),
            *_block(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
