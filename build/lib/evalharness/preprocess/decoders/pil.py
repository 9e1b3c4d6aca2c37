"""Pillow: Image.open + convert('RGB'); ignores the EXIF orientation tag unless asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from evalharness.preprocess import libraries
from evalharness.preprocess.decode import (
    DecoderCaps,
    DecodeSpec,
    composite,
    register_decoder,
    to_uint8,
)

CAPS = DecoderCaps(reduce=(1, 2, 4, 8), reduce_with_alpha=True)


@register_decoder("pil", CAPS, libraries.pillow)
def decode_pil(path: Path, spec: DecodeSpec) -> np.ndarray:
    with Image.open(path) as img:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # an animated GIF/WebP: its first frame, as Image.open shows it
        if spec.reduce > 1 and img.format == "JPEG":
            img.draft("RGB", (img.width // spec.reduce, img.height // spec.reduce))
        img.load()
        if spec.exif == "apply":
            img = ImageOps.exif_transpose(img)
        alpha = None
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA")
            alpha = np.asarray(img.getchannel("A"))
        if img.mode in ("I", "I;16", "I;16B", "I;16L"):
            gray = to_uint8(np.asarray(img))
            return np.repeat(gray[..., None], 3, axis=2)
        rgb = np.asarray(img.convert("RGB"))
    return composite(rgb, alpha, spec.alpha)
