"""torchvision.transforms.v2.functional.resize on a uint8 tensor; antialias is a choice."""

from __future__ import annotations

import numpy as np
import torch
import torchvision
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from evalharness.preprocess.resize import ResizeSpec, register_resizer

_MODES = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}


@register_resizer("torchvision", _MODES, lambda: torchvision.__version__)
def resize_tv(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    if not arr.flags.writeable:  # Pillow hands out read-only views; torch wants to own them
        arr = arr.copy()
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    antialias = spec.antialias and spec.interpolation != "nearest"
    out = TF.resize(t, [h, w], interpolation=_MODES[spec.interpolation], antialias=antialias)
    return out.permute(1, 2, 0).contiguous().numpy()
