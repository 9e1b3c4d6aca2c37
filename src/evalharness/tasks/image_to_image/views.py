"""What the report draws for one image of an image-to-image config (the Task's drawing hook).

Four 8-bit RGB images of the output's size, so they sit side by side:
- `input`: the model input, enlarged by `scale` with nearest neighbour (every input pixel
  stays visible as a block; no filter makes the input look better or worse);
- `output`, `reference`: both outputs as the saved images (clipped, rounded);
- `diff`: |output - reference| (the largest over channels), amplified by `gain` (default:
  the worst element maps to full white, at least 1x) on black, with the tile seams drawn
  in red where tiles meet: a seam that shows in the difference is the tiling's doing.
`gain` is returned so a caption can say "x 250".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalharness.tasks.image_to_image.metrics import output_to_image
from evalharness.tasks.image_to_image.tiling import seams, tile_grid

SEAM_RGB = (255, 0, 0)


@dataclass(frozen=True)
class Views:
    input: np.ndarray
    output: np.ndarray
    reference: np.ndarray | None
    diff: np.ndarray | None
    gain: float
    seam_rows: tuple[int, ...]
    seam_cols: tuple[int, ...]


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def views(
    model_input: np.ndarray,
    output: np.ndarray,
    reference: np.ndarray | None,
    scale: int,
    tile_size: int = 0,
    overlap: int = 0,
    gain: float | None = None,
) -> Views:
    """The report's images for one (1 or C, H, W) input and its (1, C', sH, sW) outputs."""
    x = model_input[0] if model_input.ndim == 4 else model_input
    small = _rgb(output_to_image(x))
    enlarged = np.repeat(np.repeat(small, scale, axis=0), scale, axis=1)
    out_img = _rgb(output_to_image(output))
    h, w = out_img.shape[:2]
    rows: list[int] = []
    cols: list[int] = []
    if tile_size:
        rows, cols = seams(tile_grid(x.shape[1], x.shape[2], tile_size, overlap), scale)
    if reference is None:
        return Views(enlarged, out_img, None, None, 1.0, tuple(rows), tuple(cols))
    o = np.nan_to_num(output.reshape(-1, h, w).astype(np.float64))
    r = reference.reshape(-1, h, w).astype(np.float64)
    diff = np.abs(o - r).max(axis=0)
    worst = float(diff.max())
    if gain is None:
        gain = max(1.0, 1.0 / worst) if worst > 0 else 1.0
    level = np.clip(diff * gain * 255.0, 0, 255).astype(np.uint8)
    heat = _rgb(level).copy()
    for y in rows:
        heat[y : y + 1, :] = SEAM_RGB
    for x0 in cols:
        heat[:, x0 : x0 + 1] = SEAM_RGB
    ref_img = _rgb(output_to_image(reference))
    return Views(enlarged, out_img, ref_img, heat, float(gain), tuple(rows), tuple(cols))
