"""Geometry as data: the transform a resize/crop/pad applied, so results map back exactly.

A `Geometry` says how a point of the decoded image lands in the model input:

    x_model = x_source * sx + ox,     y_model = y_source * sy + oy

in continuous pixel coordinates (pixel edges at integers, as COCO boxes are). It is computed
from the sizes the resize *actually* produced, so a swapped width/height or a rounding to
multiples of 32 is in the transform too: detections mapped back through `to_source` land
where the model saw them, whatever the policy. `Frame` carries pixels and geometry together
through the colour and normalize stages; the task post-processing receives both, so a box
cannot reach the metric without passing through the inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    src_hw: tuple[int, int]  # decoded image (height, width)
    out_hw: tuple[int, int]  # model input (height, width)
    scale: tuple[float, float] = (1.0, 1.0)  # (sx, sy)
    offset: tuple[float, float] = (0.0, 0.0)  # (ox, oy), model pixels

    @classmethod
    def identity(cls, hw: tuple[int, int]) -> Geometry:
        return cls(hw, hw)

    def then_resize(self, out_hw: tuple[int, int]) -> Geometry:
        """Followed by a resize of the current output to out_hw (per-axis scale)."""
        h, w = self.out_hw
        fx, fy = out_hw[1] / w, out_hw[0] / h
        sx, sy = self.scale
        ox, oy = self.offset
        return Geometry(self.src_hw, out_hw, (sx * fx, sy * fy), (ox * fx, oy * fy))

    def then_shift(self, dx: float, dy: float, out_hw: tuple[int, int]) -> Geometry:
        """Followed by a crop (negative shift) or a pad (positive shift) to out_hw."""
        ox, oy = self.offset
        return Geometry(self.src_hw, out_hw, self.scale, (ox + dx, oy + dy))

    def to_model(self, xy: np.ndarray) -> np.ndarray:
        """Source points (..., 2) as x, y -> model input points."""
        xy = np.asarray(xy, dtype=np.float64)
        return xy * np.asarray(self.scale) + np.asarray(self.offset)

    def to_source(self, xy: np.ndarray) -> np.ndarray:
        """Model input points (..., 2) as x, y -> source image points (the inverse)."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy - np.asarray(self.offset)) / np.asarray(self.scale)

    def boxes_to_source(self, boxes: np.ndarray, clip: bool = True) -> np.ndarray:
        """(n, 4) x1, y1, x2, y2 boxes in model pixels -> source pixels, clipped to the image."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 2, 2)
        out = self.to_source(b).reshape(-1, 4)
        if clip:
            h, w = self.src_hw
            out[:, 0::2] = out[:, 0::2].clip(0, w)
            out[:, 1::2] = out[:, 1::2].clip(0, h)
        return out

    def polygons_to_source(self, polys: np.ndarray, clip: bool = True) -> np.ndarray:
        """(n, k, 2) polygons in model pixels -> source pixels, clipped to the image."""
        out = self.to_source(np.asarray(polys, dtype=np.float64))
        if clip and out.size:
            h, w = self.src_hw
            out[..., 0] = out[..., 0].clip(0, w)
            out[..., 1] = out[..., 1].clip(0, h)
        return out


@dataclass(frozen=True, eq=False)
class Frame:
    """Pixels (HxWxC uint8, or the host tensor after normalize) and how they were framed."""

    pixels: np.ndarray
    geometry: Geometry

    def with_pixels(self, pixels: np.ndarray) -> Frame:
        return Frame(pixels, self.geometry)
