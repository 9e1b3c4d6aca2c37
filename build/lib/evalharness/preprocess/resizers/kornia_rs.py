"""kornia-rs `imgproc.resize` (the Rust kornia-imgproc resize): its own bilinear and nearest, the
"kornia-rs's own bilinear" option beside the `image`-crate filters (cykooz).

Measured (kornia-rs 0.2.0): bilinear is a plain 2x2 interpolation without antialiasing,
within 1 level of OpenCV INTER_LINEAR and up to ~84 levels from Pillow's antialiased
bilinear on large downscales; nearest samples pixel centres, floor((i + 0.5) * in / out),
like Pillow's NEAREST (OpenCV's INTER_NEAREST takes floor(i * in / out) instead).
"""

from __future__ import annotations

import numpy as np

from evalharness.preprocess import libraries
from evalharness.preprocess.resize import ResizeSpec, register_resizer


def _versions() -> dict[str, str]:
    return libraries.distribution("kornia-rs", "kornia_rs")


@register_resizer(
    "kornia_rs", ("bilinear", "nearest"), _versions, requires=("kornia_rs",), extra="kornia"
)
def resize_kornia_rs(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    import kornia_rs

    return kornia_rs.imgproc.resize(np.ascontiguousarray(arr), (h, w), spec.interpolation)
