"""Colour order and the host side of normalization.

What the host hands the backend depends on where normalization happens (the `norm` factor):
- host:   float32 NCHW, (x / 255 - mean) / std computed here, in torchvision's order;
- graph:  float32 NCHW raw 0..255 pixels; the model variant carries (x - 255 mean) / (255 std);
- ov_ppp: uint8 NHWC; OpenVINO's PrePostProcessor converts, transposes and normalizes.
The arithmetic differs in the last bits (fused vs separate ops, fp32 rounding): that is one of
the things a sweep measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOUR_ORDERS = ("rgb", "bgr")
PLACEMENTS = ("host", "graph", "ov_ppp")


@dataclass(frozen=True)
class ColourSpec:
    order: str = "rgb"

    def __post_init__(self) -> None:
        if self.order not in COLOUR_ORDERS:
            raise ValueError(f"colour.order must be one of {COLOUR_ORDERS}, got '{self.order}'")


def apply_colour(arr: np.ndarray, spec: ColourSpec) -> np.ndarray:
    # The decoders return RGB, so "bgr" is the mistake of feeding OpenCV's order unconverted.
    return np.ascontiguousarray(arr[..., ::-1]) if spec.order == "bgr" else arr


@dataclass(frozen=True)
class HostNormSpec:
    placement: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise ValueError(f"norm.placement must be one of {PLACEMENTS}, got '{self.placement}'")


def host_normalize(arr: np.ndarray, spec: HostNormSpec) -> np.ndarray:
    """HxWx3 uint8 -> the per-sample array the backend variant expects (see module doc)."""
    if spec.placement == "ov_ppp":
        return arr
    x = arr.astype(np.float32)
    if spec.placement == "host":
        x = x / np.float32(255.0)
        x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
