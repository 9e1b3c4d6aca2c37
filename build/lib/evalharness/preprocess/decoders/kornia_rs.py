"""kornia-rs `read_image_jpeg`: a Rust JPEG decoder (zune-jpeg, the decoder of the `image`
crate that Rust deployments use), not libjpeg-turbo: up to 3 levels from Pillow on every file.

What it honours, declared in CAPS:
- JPEG only: a PNG or other file given to it is an error row ("does not read PNG files");
- no EXIF orientation (it never reads the tag): exif=apply is refused at planning;
- no DCT-domain reduce;
- alpha: JPEG has none, so every alpha policy yields the stored pixels;
- grayscale JPEGs are read in its "mono" mode and repeated to three channels; CMYK JPEGs
  (4 components) are an error row with kornia-rs's own reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalharness.preprocess import libraries
from evalharness.preprocess.decode import DecoderCaps, DecodeSpec, register_decoder

CAPS = DecoderCaps(
    exif=("ignore",),
    reduce=(1,),
    formats=("jpeg",),
    bit16=False,
    requires=("kornia_rs",),
    extra="kornia",
)


@register_decoder("kornia_rs", CAPS, lambda: libraries.distribution("kornia-rs", "kornia_rs"))
def decode_kornia_rs(path: Path, spec: DecodeSpec) -> np.ndarray:
    import kornia_rs

    try:
        return kornia_rs.read_image_jpeg(str(path), "rgb")
    except Exception as e:  # a one-component JPEG: read as mono, then three equal channels
        if "has 1 components" not in str(e):
            raise
    gray = kornia_rs.read_image_jpeg(str(path), "mono")
    return np.repeat(gray.reshape(gray.shape[0], gray.shape[1], 1), 3, axis=2)
