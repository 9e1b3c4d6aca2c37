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

Each library is one module under `decoders/`, registered with the `DecoderCaps` it honours.
A policy a decoder can never honour is refused when the spec is built (at planning); a file
it cannot read (a PNG given to a JPEG-only decoder, a 16-bit file) is an error row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from evalharness.preprocess.errors import StageError
from evalharness.registry import Registry

EXIF_POLICIES = ("apply", "ignore")
ALPHA_POLICIES = ("drop", "black", "white")
REDUCE_FACTORS = (1, 2, 4, 8)
# Pillow's own warning threshold (about 89.5 Mpx): nothing a classifier needs is larger.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


@dataclass(frozen=True)
class DecoderCaps:
    """What a decoder honours. Planning refuses a spec outside it; files outside are errors.

    reduce_with_alpha: whether DCT-domain reduce still works when alpha is not dropped
    formats:           file formats it reads (by content, not name)
    bit16:             reads 16-bit PNG/TIFF (to 8 bits by the top byte)
    """

    exif: tuple[str, ...] = EXIF_POLICIES
    alpha: tuple[str, ...] = ALPHA_POLICIES
    reduce: tuple[int, ...] = (1,)
    reduce_with_alpha: bool = False
    formats: tuple[str, ...] = ("jpeg", "png", "gif", "bmp", "tiff", "webp")
    bit16: bool = True
    requires: tuple[str, ...] = ()
    extra: str = ""


@dataclass(frozen=True)
class DecoderInfo:
    name: str
    fn: Callable[[Path, DecodeSpec], np.ndarray]
    caps: DecoderCaps
    # library versions for the results rows ({"pillow": ..., "pillow_jpeg": ...}); cheap,
    # never raises: an absent optional library reads "absent"
    versions: Callable[[], dict[str, str]]


DECODERS: Registry[DecoderInfo] = Registry(
    "decoder library", "evalharness.preprocess.decoders", entry_points="evalharness.decoders"
)


def register_decoder(name: str, caps: DecoderCaps, versions: Callable[[], dict[str, str]]):
    """Decorator: register `fn(path, spec) -> HxWx3 uint8 RGB` under `name` with its caps."""

    def deco(fn):
        DECODERS.register(name)(DecoderInfo(name, fn, caps, versions))
        return fn

    return deco


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
        caps = DECODERS.get(self.library).caps  # unknown library -> one line, valid names
        for what, value, allowed in (
            ("exif", self.exif, caps.exif),
            ("alpha", self.alpha, caps.alpha),
            ("reduce", self.reduce, caps.reduce),
        ):
            if value not in allowed:
                raise ValueError(
                    f"decoder '{self.library}' cannot honour {what}={value} "
                    f"(it supports {', '.join(map(str, allowed))})"
                )
        if self.reduce > 1 and self.alpha != "drop" and not caps.reduce_with_alpha:
            raise ValueError(
                f"decoder '{self.library}' cannot combine reduce={self.reduce} with "
                f"alpha={self.alpha} (its reduced decode drops alpha)"
            )


def composite(rgb: np.ndarray, alpha: np.ndarray | None, policy: str) -> np.ndarray:
    """Apply the alpha policy to an RGB array with its (HxW uint8) alpha, if any."""
    if alpha is None or policy == "drop":
        return rgb
    bg = 0.0 if policy == "black" else 255.0
    a = alpha.astype(np.float32)[..., None] / 255.0
    out = rgb.astype(np.float32) * a + bg * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """16-bit samples -> 8-bit by the top byte (x >> 8, what OpenCV's IMREAD_COLOR does)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr >> 8).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):  # Pillow "I" mode holds 16-bit PNGs as int32
        return (np.clip(arr, 0, 65535) >> 8).astype(np.uint8)
    return np.clip(arr * 255.0, 0, 255).astype(np.uint8)


_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


def sniff_format(path: Path) -> str:
    """The file's format from its first bytes (names lie: a PNG called .jpg is a PNG)."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return "unknown"


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


def _check_path(path: Path) -> None:
    try:
        path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise StageError("decode", f"broken symbolic link: {path}") from None
        raise StageError("decode", f"file not found: {path}") from None
    except OSError as e:  # ELOOP: a symlink loop
        raise StageError("decode", f"cannot open {path}: {e.strerror}") from None
    if path.is_dir():
        raise StageError("decode", f"a directory, not an image file: {path}")


def decode(path: Path, spec: DecodeSpec, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode one file; any library failure becomes a StageError with a readable reason."""
    path = Path(path)
    info = DECODERS.get(spec.library)
    try:
        _check_path(path)
        if path.stat().st_size == 0:
            raise StageError("decode", "empty file")
        fmt = sniff_format(path)
        if fmt != "unknown" and fmt not in info.caps.formats:
            raise StageError(
                "decode", f"decoder '{spec.library}' does not read {fmt.upper()} files"
            )
        check_declared_size(path, max_pixels)
        out = info.fn(path, spec)
    except StageError:
        raise
    except PermissionError:
        raise StageError("decode", f"permission denied: {path}") from None
    except Image.DecompressionBombError as e:
        raise StageError("decode", f"refused: {e}") from None
    except Exception as e:  # every library has its own error types for a bad file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StageError("decode", f"{type(e).__name__}: {reason[:200]}") from None
    if out.ndim != 3 or out.shape[2] != 3 or out.dtype != np.uint8:
        raise StageError("decode", f"unexpected decoded array {out.shape} {out.dtype}")
    return np.ascontiguousarray(out)


# The built-in decoders register themselves on import.
from evalharness.preprocess import decoders  # noqa: E402, F401
