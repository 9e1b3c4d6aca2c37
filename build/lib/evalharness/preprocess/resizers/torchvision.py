"""torchvision.transforms.v2.functional.resize on a uint8 tensor; antialias is a choice."""

from __future__ import annotations

import numpy as np

from evalharness.preprocess import libraries
from evalharness.preprocess.resize import ResizeSpec, register_resizer

_MODES = ("nearest", "bilinear", "bicubic")  # torchvision InterpolationMode members, lowered


@register_resizer("torchvision", _MODES, libraries.torchvision)
def resize_tv(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    import torch  # torch loads only when this resizer runs
    import torchvision.transforms.v2.functional as TF
    from torchvision.transforms import InterpolationMode

    if not arr.flags.writeable:  # Pillow hands out read-only views; torch wants to own them
        arr = arr.copy()
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    antialias = spec.antialias and spec.interpolation != "nearest"
    mode = InterpolationMode(spec.interpolation)  # "bilinear" -> InterpolationMode.BILINEAR
    out = TF.resize(t, [h, w], interpolation=mode, antialias=antialias)
    return out.permute(1, 2, 0).contiguous().numpy()
