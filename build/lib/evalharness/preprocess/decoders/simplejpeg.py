"""simplejpeg (libjpeg-turbo through TurboJPEG): `simplejpeg` is the accurate decode, the
same bits as Pillow's and OpenCV's libjpeg-turbo; `simplejpeg_fast` asks for the fast
integer IDCT and plain upsampling (fastdct=True, fastupsample=True), which differs from the
accurate decode by up to about 20 levels on most pixels of real photos.

What it honours, declared in CAPS:
- JPEG only: a PNG or other file given to it is an error row ("does not read PNG files");
- no EXIF orientation (TurboJPEG ignores the tag): exif=apply is refused at planning;
- reduce 2/4/8 as a true DCT-domain downscale (libjpeg-turbo's scaled IDCT), the same
  mechanism as Pillow's draft() and OpenCV's IMREAD_REDUCED_*. simplejpeg picks the smallest
  scale whose output is at least `min_height` x `min_width` (`min_factor` alone does not
  scale in 1.9.0), so those are set to ceil(size / reduce): exactly the 1/reduce scale;
- alpha: JPEG has none, so every alpha policy yields the stored pixels;
- grayscale and CMYK JPEGs are converted to RGB by TurboJPEG; a truncated file is an error
  (strict mode, as Pillow and OpenCV also refuse it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalharness.preprocess import libraries
from evalharness.preprocess.decode import DecoderCaps, DecodeSpec, register_decoder

CAPS = DecoderCaps(
    exif=("ignore",),
    reduce=(1, 2, 4, 8),
    reduce_with_alpha=True,  # JPEG has no alpha to lose
    formats=("jpeg",),
    bit16=False,
    requires=("simplejpeg",),
    extra="simplejpeg",
)


def _versions() -> dict[str, str]:
    return libraries.distribution("simplejpeg", "simplejpeg")


def _decode(path: Path, spec: DecodeSpec, fast: bool) -> np.ndarray:
    import simplejpeg

    data = Path(path).read_bytes()
    if spec.reduce == 1:
        return simplejpeg.decode_jpeg(data, "RGB", fastdct=fast, fastupsample=fast)
    h, w = simplejpeg.decode_jpeg_header(data)[:2]
    r = spec.reduce
    return simplejpeg.decode_jpeg(
        data,
        "RGB",
        fastdct=fast,
        fastupsample=fast,
        min_height=-(-h // r),
        min_width=-(-w // r),
        min_factor=r,
    )


@register_decoder("simplejpeg", CAPS, _versions)
def decode_simplejpeg(path: Path, spec: DecodeSpec) -> np.ndarray:
    return _decode(path, spec, fast=False)


@register_decoder("simplejpeg_fast", CAPS, _versions)
def decode_simplejpeg_fast(path: Path, spec: DecodeSpec) -> np.ndarray:
    return _decode(path, spec, fast=True)
