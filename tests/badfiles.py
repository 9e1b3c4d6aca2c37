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


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_named_jpg() -> bytes:
    return _png(Image.fromarray(_scene()))


def animated_gif() -> bytes:
    frames = [Image.fromarray(np.roll(_scene(), k * 8, axis=1)) for k in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    return buf.getvalue()


def one_pixel() -> bytes:
    return _png(Image.fromarray(np.full((1, 1, 3), 200, np.uint8)))


def very_wide() -> bytes:
    """20000 x 100: fine to decode, extreme to resize (a centre crop sees a sliver)."""
    img = np.zeros((100, 20000, 3), np.uint8)
    img[:, ::2] = 255
    return _png(Image.fromarray(img), compress_level=1)


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
    "png_named.jpg": (png_named_jpg, "ok"),  # decoders sniff the content, not the name
    "scene.webp": (lambda: _save(Image.fromarray(_scene()), "WEBP", quality=90), "ok"),
    "scene.gif": (lambda: _save(Image.fromarray(_scene()), "GIF"), "ok"),
    "scene.tiff": (lambda: _save(Image.fromarray(_scene()), "TIFF"), "either"),  # not on tv
    "scene.bmp": (lambda: _save(Image.fromarray(_scene()), "BMP"), "either"),  # not on tv
    "animated.gif": (animated_gif, "ok"),  # the first frame, as Image.open shows it
    "one_pixel.png": (one_pixel, "ok"),
    "wide_20000x100.png": (very_wide, "ok"),
}

# Odd but legal file names: each must be its own sample and decode like any other.
ODD_NAMES = ["with space.jpg", "ünïcødé_名前.jpg", "new\nline.jpg", "#hash%percent.jpg"]
