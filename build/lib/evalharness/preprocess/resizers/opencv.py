"""OpenCV cv2.resize: LINEAR/CUBIC never antialias; AREA averages (antialiased)."""

from __future__ import annotations

import cv2
import numpy as np

from evalharness.preprocess import libraries
from evalharness.preprocess.resize import ResizeSpec, register_resizer

_FLAGS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


@register_resizer("opencv", _FLAGS, libraries.opencv)
def resize_cv2(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    return cv2.resize(arr, (w, h), interpolation=_FLAGS[spec.interpolation])
