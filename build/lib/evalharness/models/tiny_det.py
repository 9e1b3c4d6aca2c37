"""The demo detector: a YOLOX-style anchor-free head on one stride-8 level (83k params).

Its output has YOLOX's layout, (N, H/8 * W/8, 5 + C): x, y offsets in cells, log w and
log h in cells, objectness and class scores after a sigmoid. So the detection task decodes
it with the same `head: yolox` as YOLOX-Nano (strides [8]): the demo exercises the real
decode, NMS and geometry path, not a toy one.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    pad = dilation
    conv = nn.Conv2d(cin, cout, 3, stride, pad, dilation=dilation, bias=False)
    return [conv, nn.BatchNorm2d(cout), nn.SiLU()]


class TinyDet(nn.Module):
    def __init__(self, num_classes: int = 4, width: int = 8) -> None:
        super().__init__()
        w = width
        self.num_classes = num_classes
        # Thin at full resolution, wide at stride 8; dilations give the last level a
        # receptive field of about 100 px, more than the largest object at 128x128.
        self.features = nn.Sequential(
            *_conv(3, w, stride=2),  # /2
            *_conv(w, 2 * w, stride=2),  # /4
            *_conv(2 * w, 4 * w),
            *_conv(4 * w, 6 * w, stride=2),  # /8
            *_conv(6 * w, 6 * w),
            *_conv(6 * w, 6 * w, dilation=2),
            *_conv(6 * w, 6 * w, dilation=4),
        )
        self.head = nn.Conv2d(6 * w, 5 + num_classes, 1)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """(N, A, 5 + C) before the sigmoids: what the training loss reads."""
        y = self.head(self.features(x))
        return y.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.raw(x)
        return torch.cat([y[..., :4], torch.sigmoid(y[..., 4:])], dim=-1)
