"""No resampling: the image is centre-cropped or zero-padded to the model size as it is."""

from __future__ import annotations

import numpy as np

from evalharness.preprocess.resize import ResizeSpec, register_resizer


@register_resizer("none", ("none",), dict)  # no library: nothing to record
def no_resample(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    return arr  # resize() handles "none" before asking for a size; kept for the registry
