"""Decoders: file bytes -> HxWx3 uint8 RGB, with every silent library policy made explicit.

The canonical output is RGB whatever the library; channel order is the colour stage's job,
so "OpenCV decoding" and "forgot to convert BGR" are two separate, measurable factors.

Policies (each a config field, recorded in the results):
- exif:   apply | ignore. Library defaults differ: OpenCV's imread applies the EXIF
          orientation tag, Pillow and torchvision.io do not.
- alpha:  drop (keep the stored RGB under transparent pixels, what convert("RGB") and
          IMREAD_COLOR do) | black | white (composite over that background).
- reduce: 1 | 2 | 4 | 8. JPEG DCT-domain downscaling: Pillow's draft(), OpenCV's
          IMREAD_REDUCED_COLOR_*. Faster, and not the same pixels as a full decode + resize.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torchvision.io as tvio
from PIL import Image, ImageOps

from evalharness.preprocess.errors import StageError
from evalharness.registry import Registry

DECODERS: Registry[type] = Registry("decoder library")

EXIF_POLICIES = ("apply", "ignore")
ALPHA_POLICIES = ("drop", "black", "white")
REDUCE_FACTORS = (1, 2, 4, 8)
# Pillow's own warning threshold (about 89.5 Mpx): nothing a classifier needs is larger.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


@dataclass(frozen=True)
class DecodeSpec:
    """Resolved decoder settings; hashable, so it keys the memo of decoded images."""

    library: str
    exif: str = "ignore"
    alpha: str = "drop"
    reduce: int = 1

    def __post_init__(self) -> None:
        if self.exif not in EXIF_POLICIES:
            raise ValueError(f"decoder.exif must be one of {EXIF_POLICIES}, got '{self.exif}'")
        if self.alpha not in ALPHA_POLICIES:
            raise ValueError(f"decoder.alpha must be one of {ALPHA_POLICIES}, got '{self.alpha}'")
        if self.reduce not in REDUCE_FACTORS:
            raise ValueError(f"decoder.reduce must be one of {REDUCE_FACTORS}, got {self.reduce}")
        DECODERS.get(self.library)  # unknown library -> one line with the valid names


def composite(rgb: np.ndarray, alpha: np.ndarray | None, policy: str) -> np.ndarray:
    """Apply the alpha policy to an RGB array with its (HxW uint8) alpha, if any."""
    if alpha is None or policy == "drop":
        return rgb
    bg = 0.0 if policy == "black" else 255.0
    a = alpha.astype(np.float32)[..., None] / 255.0
    out = rgb.astype(np.float32) * a + bg * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """16-bit samples -> 8-bit by the top byte (x >> 8, what OpenCV's IMREAD_COLOR does)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr >> 8).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):  # Pillow "I" mode holds 16-bit PNGs as int32
        return (np.clip(arr, 0, 65535) >> 8).astype(np.uint8)
    return np.clip(arr * 255.0, 0, 255).astype(np.uint8)


@DECODERS.register("pil")
def decode_pil(path: Path, spec: DecodeSpec) -> np.ndarray:
    with Image.open(path) as img:
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
            gray = _to_uint8(np.asarray(img))
            return np.repeat(gray[..., None], 3, axis=2)
        rgb = np.asarray(img.convert("RGB"))
    return composite(rgb, alpha, spec.alpha)


_CV_REDUCED = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


@DECODERS.register("opencv")
def decode_opencv(path: Path, spec: DecodeSpec) -> np.ndarray:
    buf = np.fromfile(path, dtype=np.uint8)
    if buf.size == 0:
        raise StageError("decode", "empty file")
    keep_alpha = spec.alpha != "drop"
    flags = cv2.IMREAD_UNCHANGED if keep_alpha else _CV_REDUCED.get(spec.reduce, cv2.IMREAD_COLOR)
    if spec.exif == "ignore":
        flags |= cv2.IMREAD_IGNORE_ORIENTATION
    arr = cv2.imdecode(buf, flags)
    if arr is None:
        raise StageError("decode", "OpenCV could not decode the file")
    if keep_alpha:  # IMREAD_UNCHANGED keeps depth and channels: normalise them here
        arr = _to_uint8(arr)
        if arr.ndim == 2:
            arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
        if arr.shape[2] == 4:
            rgb = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
            return composite(rgb, arr[..., 3], spec.alpha)
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


@DECODERS.register("torchvision")
def decode_torchvision(path: Path, spec: DecodeSpec) -> np.ndarray:
    data = tvio.read_file(str(path))
    if data.numel() == 0:
        raise StageError("decode", "empty file")
    mode = tvio.ImageReadMode.RGB_ALPHA if spec.alpha != "drop" else tvio.ImageReadMode.RGB
    img = tvio.decode_image(data, mode=mode, apply_exif_orientation=spec.exif == "apply")
    arr = _to_uint8(img.permute(1, 2, 0).contiguous().numpy())  # 16-bit PNGs come as uint16
    if arr.shape[2] == 4:
        return composite(np.ascontiguousarray(arr[..., :3]), arr[..., 3], spec.alpha)
    return arr


def check_declared_size(path: Path, max_pixels: int) -> None:
    """Refuse a file whose header declares more pixels than max_pixels, before any decoder
    allocates for it (a decompression bomb). Pillow reads only the header here."""
    try:
        with Image.open(path) as img:
            w, h = img.size
    except Image.DecompressionBombError as e:
        raise StageError("decode", f"refused, decompression bomb: {e}") from None
    except (OSError, ValueError, SyntaxError):
        return  # not readable by Pillow's header parser: the decoder will say why
    if w * h > max_pixels:
        raise StageError("decode", f"refused: declared size {w}x{h} exceeds {max_pixels} pixels")


def decode(path: Path, spec: DecodeSpec, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode one file; any library failure becomes a StageError with a readable reason."""
    path = Path(path)
    try:
        if not path.exists():
            raise StageError("decode", f"file not found: {path}")
        check_declared_size(path, max_pixels)
        out = DECODERS.get(spec.library)(path, spec)
    except StageError:
        raise
    except PermissionError:
        raise StageError("decode", f"permission denied: {path}") from None
    except Image.DecompressionBombError as e:
        raise StageError("decode", f"refused: {e}") from None
    except (OSError, ValueError, RuntimeError, SyntaxError, cv2.error) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StageError("decode", f"{type(e).__name__}: {reason}") from None
    if out.ndim != 3 or out.shape[2] != 3 or out.dtype != np.uint8:
        raise StageError("decode", f"unexpected decoded array {out.shape} {out.dtype}")
    return np.ascontiguousarray(out)
