"""torchvision.io.decode_image (libjpeg-turbo, libpng). No DCT-domain reduce: refused."""

from __future__ import annotations

from pathlib import Path

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

# decode_image reads JPEG, PNG, GIF, WebP (and AVIF/HEIC where built); not BMP or TIFF.
CAPS = DecoderCaps(reduce=(1,), formats=("jpeg", "png", "gif", "webp"))


@register_decoder("torchvision", CAPS, libraries.torchvision)
def decode_torchvision(path: Path, spec: DecodeSpec) -> np.ndarray:
    import torchvision.io as tvio  # torch loads only when this decoder runs

    data = tvio.read_file(str(path))
    mode = tvio.ImageReadMode.RGB_ALPHA if spec.alpha != "drop" else tvio.ImageReadMode.RGB
    img = tvio.decode_image(data, mode=mode, apply_exif_orientation=spec.exif == "apply")
    if img.ndim == 4:  # an animated GIF decodes to all its frames: keep the first
        img = img[0]
    if img.ndim != 3:
        raise StageError("decode", f"torchvision decoded an array of shape {tuple(img.shape)}")
    arr = to_uint8(img.permute(1, 2, 0).contiguous().numpy())  # 16-bit PNGs come as uint16
    if arr.shape[2] == 4:
        return composite(np.ascontiguousarray(arr[..., :3]), arr[..., 3], spec.alpha)
    return arr
