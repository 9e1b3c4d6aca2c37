"""Pillow Image.resize: always antialiased when downscaling (the filter widens)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from evalharness.preprocess import libraries
from evalharness.preprocess.resize import ResizeSpec, register_resizer

_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}


@register_resizer("pil", _FILTERS, libraries.pillow)
def resize_pil(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((w, h), _FILTERS[spec.interpolation]))
