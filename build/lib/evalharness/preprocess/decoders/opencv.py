"""OpenCV imdecode: applies the EXIF orientation by default; BGR out, converted to RGB here.

Its DCT-domain reduce (IMREAD_REDUCED_COLOR_*) drops alpha, so reduce with an alpha policy
other than drop is refused at planning.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from evalharness.preprocess import libraries
from evalharness.preprocess.decode import (
    DecoderCaps,
    DecodeSpec,
    composite,
    register_decoder,
    to_uint8,
)
from evalharness.preprocess.errors import StageError

CAPS = DecoderCaps(reduce=(1, 2, 4, 8), reduce_with_alpha=False)
_REDUCED = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


@register_decoder("opencv", CAPS, libraries.opencv)
def decode_opencv(path: Path, spec: DecodeSpec) -> np.ndarray:
    buf = np.fromfile(path, dtype=np.uint8)
    keep_alpha = spec.alpha != "drop"
    flags = cv2.IMREAD_UNCHANGED if keep_alpha else _REDUCED.get(spec.reduce, cv2.IMREAD_COLOR)
    if spec.exif == "ignore":
        flags |= cv2.IMREAD_IGNORE_ORIENTATION
    arr = cv2.imdecode(buf, flags)
    if arr is None:
        raise StageError("decode", "OpenCV could not decode the file")
    if keep_alpha:  # IMREAD_UNCHANGED keeps depth and channels: normalise them here
        arr = to_uint8(arr)
        if arr.ndim == 2:
            arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
        if arr.shape[2] == 4:
            rgb = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
            return composite(rgb, arr[..., 3], spec.alpha)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
