"""What the model saw: a config's host tensor turned back into an image, and |A - B|.

A host tensor is what the backend is handed: normalized float CHW (norm=host), raw 0..255
float CHW that the graph normalizes (graph), or uint8 HWC that OpenVINO's PrePostProcessor
normalizes (ov_ppp). First it becomes what the network's first layer receives,
z = (x / 255 - mean) / std with the config's own mean/std wherever they are applied. Then z is
read back the way the model was trained to read it: the model card's (the reference
config's) mean/std and channel order inverted. So a config with the right pixels and the
wrong mean/std, or with BGR fed to an RGB model, looks wrong here, as it does to the model;
inverting each config's own normalization would show both as the same clean image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalharness.preprocess.geometry import Geometry


@dataclass(frozen=True)
class Reading:
    """How the model reads its input: the reference config's mean/std and channel order."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    order: str  # "rgb" | "bgr": which colour the network's channel 0 holds

    @classmethod
    def of(cls, spec) -> Reading:
        colour = next((s.spec.order for s in spec.stages if s.kind == "colour"), "rgb")
        return cls(tuple(spec.variant.mean), tuple(spec.variant.std), colour)


def network_input(pixels: np.ndarray, spec) -> np.ndarray:
    """(3, H, W) float32: what the first layer receives from this config's host tensor."""
    v = spec.variant
    x = np.asarray(pixels)
    if v.placement == "ov_ppp":
        x = np.moveaxis(x, -1, 0)  # HWC uint8 -> CHW
    x = x.astype(np.float32)
    if v.placement == "host":
        return x  # normalized on the host already (raw pixels when mean 0, std 1/255)
    mean = np.asarray(v.mean, np.float32)[:, None, None]
    std = np.asarray(v.std, np.float32)[:, None, None]
    return (x / 255.0 - mean) / std


def model_view(pixels: np.ndarray, spec, reading: Reading) -> np.ndarray:
    """HxWx3 uint8 RGB: the host tensor as the model reads it (module doc)."""
    z = network_input(pixels, spec)
    mean = np.asarray(reading.mean, np.float32)[:, None, None]
    std = np.asarray(reading.std, np.float32)[:, None, None]
    img = np.moveaxis((z * std + mean) * 255.0, 0, -1)
    if reading.order == "bgr":
        img = img[..., ::-1]  # the network's channel 0 is blue: shown as blue
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Difference:
    """|A - B| per pixel (largest over the channels) on A's grid, and how it was made."""

    magnitude: np.ndarray  # (H, W) float, 0..255
    outside: np.ndarray  # (H, W) bool: A's pixels B's frame does not cover
    resampled: bool  # B was mapped onto A's grid (different sizes or framing)

    @property
    def max(self) -> float:
        inside = self.magnitude[~self.outside]
        return float(inside.max()) if inside.size else 0.0

    @property
    def gain(self) -> int:
        """A power of two that brings the largest difference near full scale (1 to 64)."""
        m = self.max
        if m <= 0:
            return 1
        return int(2 ** np.clip(np.floor(np.log2(255.0 / m)), 0, 6))

    def image(self) -> np.ndarray:
        """HxWx3 uint8: the amplified difference in grey, pixels outside B's frame blue."""
        grey = np.clip(self.magnitude * self.gain, 0, 255).astype(np.uint8)
        out = np.repeat(grey[..., None], 3, axis=-1)
        out[self.outside] = (40, 60, 140)
        return out

    def caption(self) -> str:
        if self.max == 0:
            return "identical inputs"
        where = ", B resampled onto A's grid (nearest)" if self.resampled else ""
        return f"|A - B| x{self.gain}, max {self.max:.0f} of 255{where}"


def difference(a: np.ndarray, b: np.ndarray, geom_a: Geometry | None,
               geom_b: Geometry | None) -> Difference:  # fmt: skip
    """Pixel difference of two views. Same size and same framing: pixel by pixel. Otherwise
    each of A's pixel centres is mapped to the source image and on into B's input through
    the two Geometries (the transform each resize recorded), and B's nearest pixel is taken:
    the difference then also holds this resampling, which the caption says."""
    a16, b16 = a.astype(np.int16), b.astype(np.int16)
    same = a.shape == b.shape and (geom_a is None or geom_b is None or geom_a == geom_b)
    if same:
        d = np.abs(a16 - b16).max(axis=-1).astype(np.float32)
        return Difference(d, np.zeros(d.shape, bool), False)
    if geom_a is None or geom_b is None:  # no way to align them
        d = np.zeros(a.shape[:2], np.float32)
        return Difference(d, np.ones(d.shape, bool), True)
    h, w = a.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    pts = np.stack([xs + 0.5, ys + 0.5], axis=-1)
    pts = _scaled(pts, geom_a, a.shape[:2], to_geometry=True)
    in_b = geom_b.to_model(geom_a.to_source(pts))
    in_b = _scaled(in_b, geom_b, b.shape[:2], to_geometry=False)
    bx, by = np.floor(in_b[..., 0]).astype(int), np.floor(in_b[..., 1]).astype(int)
    outside = (bx < 0) | (by < 0) | (bx >= b.shape[1]) | (by >= b.shape[0])
    picked = b16[np.clip(by, 0, b.shape[0] - 1), np.clip(bx, 0, b.shape[1] - 1)]
    d = np.abs(a16 - picked).max(axis=-1).astype(np.float32)
    d[outside] = 0
    return Difference(d, outside, True)


def _scaled(pts: np.ndarray, geom: Geometry, hw: tuple[int, int], to_geometry: bool):
    """A view smaller than the geometry's output (resized inside the model) in model pixels."""
    gh, gw = geom.out_hw
    h, w = hw
    if (h, w) == (gh, gw):
        return pts
    f = np.array([gw / w, gh / h]) if to_geometry else np.array([w / gw, h / gh])
    return pts * f
