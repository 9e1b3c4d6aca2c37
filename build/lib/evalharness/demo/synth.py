"""Procedural images for the demo dataset and the demo model's training split.

The classes are built so that the preprocessing mistakes seen on real photos matter here too:
- colour: `red_disk` and `blue_disk` differ only in hue, so a BGR pipeline swaps them;
- fine detail: `fine_stripes` / `fine_checker` carry a 2-3 px period pattern that an
  antialiased downscale averages to flat grey, and a non-antialiased one aliases into
  coarse moire that looks like `coarse_stripes` / `coarse_checker`;
- geometry: objects sit in the centre of non-square canvases, so crop policy and a
  width/height swap change what the model sees.
Everything is a pure function of the numpy Generator it is given.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

CLASSES = [
    "red_disk",
    "blue_disk",
    "square",
    "triangle",
    "ring",
    "cross",
    "fine_stripes",
    "coarse_stripes",
    "fine_checker",
    "coarse_checker",
]
# Classes whose identity survives conversion to grayscale (used for the grayscale files).
GRAYSCALE_SAFE = ["triangle", "ring", "cross", "coarse_stripes", "coarse_checker"]

ASPECTS = [1.0, 4 / 3, 3 / 2, 16 / 9, 3 / 4, 2 / 3, 9 / 16, 5 / 4]


@dataclass(frozen=True)
class Canvas:
    height: int
    width: int


def random_canvas(rng: np.random.Generator, short_min: int = 160, short_max: int = 320) -> Canvas:
    short = int(rng.integers(short_min, short_max + 1))
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]  # width / height
    if aspect >= 1:
        return Canvas(height=short, width=int(round(short * aspect)))
    return Canvas(height=int(round(short / aspect)), width=short)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def _saturated(
    rng: np.random.Generator, hue: float | None = None, spread: float = 0.0
) -> np.ndarray:
    if hue is None:
        hue = float(rng.uniform(0, 1))
    else:
        hue = hue + float(rng.uniform(-spread, spread))
    return _hsv(hue, float(rng.uniform(0.65, 0.95)), float(rng.uniform(0.6, 0.95)))


def _background(rng: np.random.Generator, c: Canvas) -> np.ndarray:
    """Smooth two-colour gradient (desaturated, so objects stand out) plus sensor-like noise."""
    a = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.3), rng.uniform(0.25, 0.75))
    b = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.3), rng.uniform(0.25, 0.75))
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0 : c.height, 0 : c.width].astype(np.float32)
    t = (np.cos(theta) * xx / c.width + np.sin(theta) * yy / c.height + 1) / 2
    img = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    return img + rng.normal(0, 3.0, size=img.shape).astype(np.float32)


def _object_frame(rng: np.random.Generator, c: Canvas):
    """Centre, radius and rotated coordinates of the object; it stays inside the centre crop."""
    short = min(c.height, c.width)
    radius = short * float(rng.uniform(0.22, 0.36))
    cy = c.height / 2 + rng.uniform(-0.06, 0.06) * short
    cx = c.width / 2 + rng.uniform(-0.06, 0.06) * short
    yy, xx = np.mgrid[0 : c.height, 0 : c.width].astype(np.float32)
    yy, xx = yy + 0.5 - cy, xx + 0.5 - cx
    rot = rng.uniform(0, 2 * np.pi)
    u = np.cos(rot) * xx + np.sin(rot) * yy
    v = -np.sin(rot) * xx + np.cos(rot) * yy
    return radius, xx, yy, u, v


def _soft(sd: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) -> coverage with a one-pixel antialiased edge."""
    return np.clip(0.5 - sd, 0.0, 1.0)


def _shape_mask(shape: str, radius: float, xx, yy, u, v) -> np.ndarray:
    r = np.hypot(xx, yy)
    if shape == "disk":
        return _soft(r - radius)
    if shape == "ring":
        return _soft(np.abs(r - radius * 0.75) - radius * 0.25)
    if shape == "square":
        half = radius * 0.85
        return _soft(np.maximum(np.abs(u), np.abs(v)) - half)
    if shape == "cross":
        arm = radius * 0.3
        bar1 = np.maximum(np.abs(u) - radius, np.abs(v) - arm)
        bar2 = np.maximum(np.abs(v) - radius, np.abs(u) - arm)
        return _soft(np.minimum(bar1, bar2))
    if shape == "triangle":
        # Equilateral triangle: max of three half-plane distances.
        d = []
        for k in range(3):
            ang = np.pi / 2 + k * 2 * np.pi / 3
            d.append(np.cos(ang) * u + np.sin(ang) * v - radius * 0.5)
        return _soft(np.maximum.reduce(d))
    raise ValueError(f"unknown shape {shape}")


def _fill(rng: np.random.Generator, kind: str, radius: float, u, v, hue: float | None = None):
    """Texture inside the object, HxWx3 float."""
    h, w = u.shape
    if kind == "solid":
        col = _saturated(rng, hue, spread=0.035)
        shade = 1 + 0.12 * (u / max(radius, 1.0))[..., None]
        return np.broadcast_to(col, (h, w, 3)) * shade
    # Patterns use a dark and a light grey-ish colour: their average is a flat grey, unlike
    # any solid-filled class, so the antialiased look of a fine pattern is unambiguous.
    dark = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.2), rng.uniform(0.05, 0.2))
    light = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.2), rng.uniform(0.8, 0.97))
    if kind == "fine_stripes":
        period = rng.uniform(2.0, 3.0)
        t = (np.sin(2 * np.pi * u / period) > 0).astype(np.float32)
    elif kind == "coarse_stripes":
        period = radius * rng.uniform(0.35, 0.5)
        t = (np.sin(2 * np.pi * u / period) > 0).astype(np.float32)
    elif kind == "fine_checker":
        cell = rng.uniform(1.0, 1.5)
        t = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    elif kind == "coarse_checker":
        cell = radius * rng.uniform(0.25, 0.35)
        t = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    else:
        raise ValueError(f"unknown fill {kind}")
    return dark * (1 - t[..., None]) + light * t[..., None]


# class name -> (shape, fill, hue or None for any hue)
RECIPES: dict[str, tuple[str, str, float | None]] = {
    "red_disk": ("disk", "solid", 0.0),
    "blue_disk": ("disk", "solid", 0.62),
    "square": ("square", "solid", None),
    "triangle": ("triangle", "solid", None),
    "ring": ("ring", "solid", None),
    "cross": ("cross", "solid", None),
    "fine_stripes": ("square", "fine_stripes", None),
    "coarse_stripes": ("square", "coarse_stripes", None),
    "fine_checker": ("disk", "fine_checker", None),
    "coarse_checker": ("disk", "coarse_checker", None),
}


def render(label: int, rng: np.random.Generator, canvas: Canvas | None = None) -> np.ndarray:
    """An upright HxWx3 uint8 RGB image of class `label`."""
    c = canvas or random_canvas(rng)
    shape, fill, hue = RECIPES[CLASSES[label]]
    bg = _background(rng, c)
    radius, xx, yy, u, v = _object_frame(rng, c)
    mask = _shape_mask(shape, radius, xx, yy, u, v)[..., None]
    fg = _fill(rng, fill, radius, u, v, hue)
    img = bg * (1 - mask) + fg * mask
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
