"""ncnn `Mat.from_pixels_resize` (PIXEL_RGB): the resize inside ncnn's own preprocessing.

It is a bilinear without antialiasing, OpenCV's arithmetic (half-pixel centres, 11-bit fixed
point weights): measured within 1 level of cv2.INTER_LINEAR on real photos (mean 0.002).
ncnn returns a float CHW Mat of whole numbers; it is handed on as HxWx3 uint8 so the colour
and normalize stages stay the same for every resize library.

`ncnn_swapped_hw` is this call with the target width and height exchanged (Tencent/ncnn#5361:
accuracy fell because W and H were mixed up in the preprocessing resize); resize.py computes
the Geometry from the array ncnn really returned, so the distortion is recorded.
"""

from __future__ import annotations

import numpy as np

from evalharness.preprocess import libraries
from evalharness.preprocess.resize import ResizeSpec, register_resizer


def _versions() -> dict[str, str]:
    return libraries.distribution("ncnn", "ncnn")


@register_resizer("ncnn", ("bilinear",), _versions, requires=("ncnn",), extra="ncnn")
def resize_ncnn(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    import ncnn

    src_h, src_w = arr.shape[:2]
    rgb = ncnn.Mat.PixelType.PIXEL_RGB
    mat = ncnn.Mat.from_pixels_resize(np.ascontiguousarray(arr), rgb, src_w, src_h, w, h)
    chw = np.array(mat)
    return np.clip(np.rint(chw), 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()
