"""Tiles with context, and padding to a model's size multiple: how chaiNNer-like tools run
upscalers on images too large for memory, and models that need sizes divisible by 8.

Arrays are NCHW float32 with N = 1 (one image), the layout every runtime here takes; a
model function maps (1, C, h, w) to (1, C', h * scale, w * scale).

Tiling follows chaiNNer's `auto_split` (max-size split): with tiles of at most `size`
input pixels, an axis of length L is cut into n = ceil(L / size) tiles of ceil(L / n)
pixels (balanced, not `size` + remainder: 72 px gives 36 + 36, not 64 + 8); each tile is
read with `overlap` extra pixels of context on every side that has image there, and only
its core is written to the output. Measured on Real-ESRGAN Compact x4 over Set5 with 64 px
tiles: overlap 0 leaves seams of up to 101 grey levels; the network is 18 3x3 convolutions
(18 LR px of receptive field each side), so with 16 px of context a core's outer 2 px still
see the tile's zero padding (max |diff| 3e-4, 1 grey level); 32 px is bit-exact with the
whole image on torch CPU.

Padding goes at the bottom and right only, as spandrel's `pad_tensor` and DITN's own
`check_image_size` do, so that with "reflect" an externally padded model sees exactly the
input torch pads itself; the output is cropped back to scale x the unpadded size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from evalharness.tasks.image_to_image.export import check_output

ModelFn = Callable[[np.ndarray], np.ndarray]
PadMode = Literal["reflect", "replicate", "constant"]
_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "constant": "constant"}


@dataclass(frozen=True)
class Tile:
    """One tile in input pixels: `core` is what it writes, `context` what the model sees
    (core plus up to `overlap` pixels each side); both are (y0, y1, x0, x1), end-exclusive."""

    core: tuple[int, int, int, int]
    context: tuple[int, int, int, int]


def _segments(length: int, size: int) -> list[tuple[int, int]]:
    """Balanced cut of one axis into at most-`size` pieces (chaiNNer's tile-count rule)."""
    count = math.ceil(length / size)
    step = math.ceil(length / count)
    return [(s, min(length, s + step)) for s in range(0, length, step)]


def tile_grid(height: int, width: int, size: int, overlap: int) -> list[Tile]:
    """The tiles, row-major, that `run_tiled` uses for an image of this input size; the
    cores partition the image, so their edges are where seams can appear (see `seams`)."""
    if size < 1 or overlap < 0:
        raise ValueError(f"tile size must be >= 1 and overlap >= 0, got {size}, {overlap}")
    tiles = []
    for y0, y1 in _segments(height, size):
        for x0, x1 in _segments(width, size):
            context = (
                max(0, y0 - overlap),
                min(height, y1 + overlap),
                max(0, x0 - overlap),
                min(width, x1 + overlap),
            )
            tiles.append(Tile((y0, y1, x0, x1), context))
    return tiles


def seams(grid: list[Tile], scale: int = 1) -> tuple[list[int], list[int]]:
    """Rows and columns (in output pixels at `scale`) where two tile cores meet: where to
    draw seam lines, or where to look for tiling differences."""
    rows = sorted({t.core[0] for t in grid if t.core[0] > 0})
    cols = sorted({t.core[2] for t in grid if t.core[2] > 0})
    return [r * scale for r in rows], [c * scale for c in cols]


def run_tiled(fn: ModelFn, x: np.ndarray, size: int, overlap: int, scale: int) -> np.ndarray:
    """`fn` over (1, C, H, W) `x` tile by tile, stitching the cores; each tile's output goes
    through the shape guard, so a model that ignores its input size fails here by name."""
    _check_batch(x)
    _, _, height, width = x.shape
    out: np.ndarray | None = None
    for tile in tile_grid(height, width, size, overlap):
        cy0, cy1, cx0, cx1 = tile.context
        y0, y1, x0, x1 = tile.core
        part = fn(np.ascontiguousarray(x[:, :, cy0:cy1, cx0:cx1]))
        check_output(part, (cy1 - cy0, cx1 - cx0), scale)
        if out is None:
            out = np.empty((1, part.shape[1], height * scale, width * scale), part.dtype)
        oy, ox = (y0 - cy0) * scale, (x0 - cx0) * scale
        core = part[:, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale]
        out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = core
    assert out is not None  # an image has at least one tile
    return out


def pad_amounts(height: int, width: int, multiple: int, minimum: int = 0) -> tuple[int, int]:
    """(pad_h, pad_w) to reach the smallest size >= `minimum` that `multiple` divides."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")

    def need(n: int) -> int:
        target = max(n, minimum)
        return -(-target // multiple) * multiple - n

    return need(height), need(width)


def pad_to_multiple(
    x: np.ndarray, multiple: int, mode: PadMode = "reflect", minimum: int = 0, value: float = 0.0
) -> tuple[np.ndarray, tuple[int, int]]:
    """(padded x, (pad_h, pad_w)): bottom/right padding of a (1, C, H, W) array.

    "reflect" mirrors without repeating the edge (torch/numpy "reflect"); it cannot pad
    more than size - 1, and the rest is "replicate", as spandrel does. "replicate" repeats
    the edge; "constant" fills `value` (black for 0)."""
    _check_batch(x)
    if mode not in _NUMPY_MODE:
        raise ValueError(f"unknown pad mode {mode!r}: reflect, replicate or constant")
    _, _, height, width = x.shape
    pad_h, pad_w = pad_amounts(height, width, multiple, minimum)
    if not (pad_h or pad_w):
        return x, (0, 0)
    if mode == "constant":
        widths = ((0, 0), (0, 0), (0, pad_h), (0, pad_w))
        return np.pad(x, widths, mode="constant", constant_values=value), (pad_h, pad_w)
    first_h, first_w = pad_h, pad_w
    if mode == "reflect":
        first_h, first_w = min(pad_h, height - 1), min(pad_w, width - 1)
    out = np.pad(x, ((0, 0), (0, 0), (0, first_h), (0, first_w)), mode=_NUMPY_MODE[mode])
    rest = ((0, 0), (0, 0), (0, pad_h - first_h), (0, pad_w - first_w))
    return np.pad(out, rest, mode="edge"), (pad_h, pad_w)


def crop_output(out: np.ndarray, height: int, width: int, scale: int) -> np.ndarray:
    """The output of a padded input cut back to scale x the original (H, W)."""
    return out[:, :, : height * scale, : width * scale]


def padded(
    fn: ModelFn, multiple: int, scale: int, mode: PadMode = "reflect", minimum: int = 0
) -> ModelFn:
    """`fn` wrapped to pad its input to the size multiple, check the output size against
    the padded input (so a runtime that returns the wrong size is caught) and crop back."""

    def run(x: np.ndarray) -> np.ndarray:
        _, _, height, width = x.shape
        xp, _ = pad_to_multiple(x, multiple, mode, minimum)
        out = fn(np.ascontiguousarray(xp))
        check_output(out, xp.shape[2:], scale)
        return crop_output(out, height, width, scale)

    return run


def as_batch(img: np.ndarray) -> np.ndarray:
    """An 8-bit image (H, W, C) or (H, W) as the (1, C, H, W) float32 in [0, 1] the models
    take (spandrel's convention: RGB order, no mean/std)."""
    chw = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
    return np.ascontiguousarray(chw[None], dtype=np.float32) / np.float32(255.0)


def _check_batch(x: np.ndarray) -> None:
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image as (1, C, H, W), got shape {x.shape}")
