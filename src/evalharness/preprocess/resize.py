"""Resize + crop: HxWx3 uint8 -> size x size x 3 uint8, with the library doing the filtering.

Geometry (which output size, which crop) is computed once here, the same for every library,
so that a change of library changes only the filter, never the framing:
- center:    scale the short side to floor(size / crop_pct), then centre-crop size x size.
             Loses the borders of the long side (and (1 - crop_pct) of the short side).
- squash:    resize straight to size x size. Keeps everything, distorts the aspect ratio.
- letterbox: scale the long side to size, pad the rest with `pad_value`. Keeps everything
             undistorted, but the object gets smaller and the model sees padding.
- squash_crop: resize both sides to floor(size / crop_pct), then centre-crop (timm's
             "squash" mode): distorts like squash, loses borders like center.
- limit_max / limit_min: text-detector policies (PaddleOCR's limit_type max / min): scale so
             the long side is at most / the short side at least `limit_len` (never the other
             way), round each side to a multiple of `multiple`, then centre-crop or pad to
             size. A model trained with one and served with the other sees another scale.
The short-side rule follows torchvision's Resize(int): long = int(size * long / short).

Antialiasing is where libraries silently differ: Pillow always widens its filter when
downscaling; OpenCV's INTER_LINEAR/CUBIC never do (INTER_AREA does); torchvision's tensor
resize does only with antialias=True. `swap_hw` reproduces the classic bug of passing
(height, width) where the library wants (width, height).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from evalharness.registry import Registry, unknown_choice_message

RESIZERS: Registry = Registry("resize library")
CROPS = ("center", "squash", "letterbox", "squash_crop", "limit_max", "limit_min")

_PIL = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}
_CV2 = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}
_TV = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}
INTERPOLATIONS = {"pil": _PIL, "opencv": _CV2, "torchvision": _TV, "none": {"none": None}}


@dataclass(frozen=True)
class ResizeSpec:
    library: str
    interpolation: str
    size: int
    antialias: bool = True  # only torchvision lets you choose; recorded for the others
    crop: str = "center"
    crop_pct: float = 0.875
    swap_hw: bool = False
    pad_value: int = 0
    limit_len: int = 0  # limit_* policies; 0 = the model size
    multiple: int = 32  # limit_* policies round each side to a multiple of this

    def __post_init__(self) -> None:
        RESIZERS.get(self.library)
        modes = INTERPOLATIONS[self.library]
        if self.interpolation not in modes:
            kind = f"interpolation for {self.library}"
            raise ValueError(unknown_choice_message(kind, self.interpolation, list(modes)))
        if self.crop not in CROPS:
            raise ValueError(unknown_choice_message("crop policy", self.crop, list(CROPS)))
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"resize.crop_pct must be in (0, 1], got {self.crop_pct}")


def resized_hw(h: int, w: int, spec: ResizeSpec) -> tuple[int, int]:
    """(height, width) the library is asked to produce, before any crop or pad."""
    size = spec.size
    if spec.crop == "squash":
        return size, size
    if spec.crop in ("limit_max", "limit_min"):
        return limited_hw(h, w, spec.limit_len or size, spec.crop == "limit_max", spec.multiple)
    if spec.crop == "squash_crop":
        target = int(math.floor(size / spec.crop_pct))
        return target, target
    if spec.crop == "center":
        target = int(math.floor(size / spec.crop_pct))
        if h <= w:
            return target, max(1, int(target * w / h))
        return max(1, int(target * h / w)), target
    scale = size / max(h, w)  # letterbox: long side to size
    return max(1, round(h * scale)), max(1, round(w * scale))


def limited_hw(h: int, w: int, limit: int, is_max: bool, multiple: int) -> tuple[int, int]:
    """PaddleOCR DetResizeForTest (type 0): limit one side, round both to `multiple`."""
    if is_max:
        ratio = limit / max(h, w) if max(h, w) > limit else 1.0
    else:
        ratio = limit / min(h, w) if min(h, w) < limit else 1.0
    rh, rw = int(h * ratio), int(w * ratio)
    return max(round(rh / multiple) * multiple, multiple), max(
        round(rw / multiple) * multiple, multiple
    )


def center_crop(arr: np.ndarray, size: int) -> np.ndarray:
    """torchvision's CenterCrop arithmetic; pads with zeros if the input is smaller."""
    h, w = arr.shape[:2]
    if h < size or w < size:
        arr = letterbox_pad(arr, max(size, h), max(size, w), 0)
        h, w = arr.shape[:2]
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return arr[top : top + size, left : left + size]


def letterbox_pad(arr: np.ndarray, out_h: int, out_w: int, value: int) -> np.ndarray:
    h, w = arr.shape[:2]
    out = np.full((out_h, out_w, arr.shape[2]), value, dtype=arr.dtype)
    top, left = (out_h - h) // 2, (out_w - w) // 2
    out[top : top + h, left : left + w] = arr
    return out


@RESIZERS.register("pil")
def _resize_pil(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((w, h), _PIL[spec.interpolation]))


@RESIZERS.register("opencv")
def _resize_cv2(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    return cv2.resize(arr, (w, h), interpolation=_CV2[spec.interpolation])


@RESIZERS.register("torchvision")
def _resize_tv(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    if not arr.flags.writeable:  # Pillow hands out read-only views; torch wants to own them
        arr = arr.copy()
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    antialias = spec.antialias and spec.interpolation != "nearest"
    out = TF.resize(t, [h, w], interpolation=_TV[spec.interpolation], antialias=antialias)
    return out.permute(1, 2, 0).contiguous().numpy()


@RESIZERS.register("none")
def _no_resample(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    return arr  # resize() handles "none" before asking for a size; kept for the registry


def resize(arr: np.ndarray, spec: ResizeSpec) -> np.ndarray:
    if spec.library == "none":  # no resampling: centre-crop (or zero-pad) to the model size
        return center_crop(arr, spec.size) if arr.shape[:2] != (spec.size,) * 2 else arr
    h, w = resized_hw(arr.shape[0], arr.shape[1], spec)
    if spec.swap_hw:  # the bug: (h, w) handed to an API that reads (w, h)
        h, w = w, h
    out = RESIZERS.get(spec.library)(arr, h, w, spec)
    if spec.crop == "letterbox":
        return letterbox_pad(out, spec.size, spec.size, spec.pad_value)
    if spec.crop in ("center", "squash_crop", "limit_max", "limit_min"):
        return center_crop(out, spec.size)  # limit_*: pads when the rounded image is smaller
    return out
