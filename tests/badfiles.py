"""Deliberately awkward and broken image files, each made the way it occurs in the wild."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _scene() -> np.ndarray:
    rng = np.random.default_rng(7)
    img = np.full((96, 128, 3), 90, np.uint8)
    img[24:72, 40:88] = (220, 40, 50)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def truncated_jpeg() -> bytes:
    data = _jpeg(Image.fromarray(_scene()))
    return data[: len(data) // 3]


def cmyk_jpeg() -> bytes:
    return _jpeg(Image.fromarray(_scene()).convert("CMYK"))


def grayscale_jpeg() -> bytes:
    return _jpeg(Image.fromarray(_scene()).convert("L"))


def palette_png_with_transparency() -> bytes:
    img = Image.fromarray(_scene()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _png(img, transparency=0)


def png_16bit() -> bytes:
    gray = (_scene()[..., 0].astype(np.uint16) * 257).astype(np.uint16)
    return _png(Image.fromarray(gray))


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(Image.fromarray(_scene()).transpose(Image.Transpose.ROTATE_90), exif=exif)


def decompression_bomb_png(side: int = 60_000) -> bytes:
    """A valid tiny PNG whose header declares side x side pixels (3.6 Gpx)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# name -> (bytes, what a decoder should do: "ok" = decoded by an explicit policy, "error" = row)
BAD_FILES = {
    "truncated.jpg": (truncated_jpeg, "either"),  # some libraries pad a truncated scan with grey
    "empty.jpg": (lambda: b"", "error"),
    "not_an_image.jpg": (lambda: b"%PDF-1.4 this is a pdf, not a picture", "error"),
    "cmyk.jpg": (cmyk_jpeg, "ok"),
    "gray.jpg": (grayscale_jpeg, "ok"),
    "palette_transparent.png": (palette_png_with_transparency, "ok"),
    "sixteen_bit.png": (png_16bit, "ok"),
    "exif_rotated.jpg": (exif_rotated_jpeg, "ok"),
    "bomb.png": (decompression_bomb_png, "error"),
}
