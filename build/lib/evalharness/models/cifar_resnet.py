"""ResNet-20 for CIFAR-10 (He et al. 2016, the 0.27M-parameter CIFAR variant).

3x3 conv with 16 channels; three stages of three BasicBlocks with 16/32/64 channels, stride 2
at the start of stages 2 and 3; "option A" shortcuts (identity, or for a change of shape the
input subsampled by 2 and zero-padded with (out - in) / 2 channels on each side); global
average pool; linear 64 -> 10; no bias in the convolutions. Parameter names follow the
widely used checkpoint layout (conv1, bn1, layer1.0.conv1, ..., linear).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PadShortcut(nn.Module):
    """Option A: subsample by 2 and zero-pad the channels; no parameters.

    The subsampling is `F.max_pool2d(x, 1, 2)`, a 1x1 window with stride 2: the same tensor
    as the usual `x[:, :, ::2, ::2]` (bit-identical, a test keeps it so), but pnnx converts
    it to ncnn, while the strided slice fails there ("slice with step 2").
    """

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(F.max_pool2d(x, 1, 2), (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = PadShortcut((cout - cin) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, blocks_per_stage, 1)
        self.layer2 = self._stage(16, 32, blocks_per_stage, 2)
        self.layer3 = self._stage(32, 64, blocks_per_stage, 2)
        self.linear = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(cin: int, cout: int, n: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlock(cin, cout, stride)]
        blocks += [BasicBlock(cout, cout, 1) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def resnet20(num_classes: int = 10) -> CifarResNet:
    return CifarResNet(3, num_classes)
