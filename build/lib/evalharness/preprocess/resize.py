"""Resize + crop/pad: HxWx3 uint8 -> a Frame (the model's pixels and the Geometry applied).

Geometry (which output size, which crop) is computed once here, the same for every library,
so that a change of library changes only the filter, never the framing:
- center:    scale the short side to floor(size / crop_pct), then centre-crop size x size.
             Loses the borders of the long side (and (1 - crop_pct) of the short side).
- squash:    resize straight to the model size. Keeps everything, distorts the aspect ratio.
- letterbox: scale the long side to the model size, pad the rest with `pad_value` (centred,
             or `anchor: top_left` as YOLOX does, which also truncates the scaled size as it
             does). Undistorted, but the object gets smaller and the model sees padding.
- letterbox_multiple: the long side to the model size exactly, the short side int(short *
             size / long), then pad each side only up to a multiple of `multiple`, centred
             (NanoDet's ncnn preprocessing: 640 x 427 -> 320 x 213 -> 320 x 224): less padding
             than a square letterbox, and the model sees a non-square input.
- squash_crop: resize both sides to floor(size / crop_pct), then centre-crop (timm's
             "squash" mode): distorts like squash, loses borders like center.
- limit_max / limit_min: PaddleOCR's DetResizeForTest (`limit_type` max / min), with the
             arithmetic of rapidocr's DetPreProcess.resize: ratio = limit_side_len / the long
             (short) side when it is above (below) the limit, else 1; each side int(side *
             ratio), then round(side / multiple) * multiple with Python's round (half to
             even). The rounded size is not raised to one multiple: a side that rounds to 0
             is an error row, where rapidocr returns no detections. With a fixed model size
             the result is then centre-cropped or padded to it; a model that takes any size
             (card input_size: null) gets the rounded image as it is.
The short-side rule follows torchvision's Resize(int): long = int(size * long / short).

Antialiasing is where libraries silently differ: Pillow always widens its filter when
downscaling; OpenCV's INTER_LINEAR/CUBIC never do (INTER_AREA does); torchvision's tensor
resize does only with antialias=True. `swap_hw` reproduces the classic bug of passing
(height, width) where the library wants (width, height); the Geometry records the distortion.

Each library is one module under `resizers/`, registered with the interpolations it has.

A library may resample inside the model instead of on the host (`in_model`: OpenVINO's
PrePostProcessor resize). The host then does only the framing that needs no resampling: it
cuts (or pads) the source to the window the crop policy would show the model, and the
Geometry is that window followed by the resize to the model size the compiled model applies.
See `frame_for_model`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evalharness.preprocess.errors import StageError
from evalharness.preprocess.geometry import Frame, Geometry
from evalharness.registry import Registry, unknown_choice_message

CROPS = (
    "center",
    "squash",
    "letterbox",
    "letterbox_multiple",
    "squash_crop",
    "limit_max",
    "limit_min",
    "none",
)
ANCHORS = ("center", "top_left")


@dataclass(frozen=True)
class ResizerInfo:
    """A resize library: fn(arr, h, w, spec) -> h x w x 3 uint8, and what it offers.

    in_model: the model variant option that makes the backend resample (e.g. `ppp_resize`,
              set to the interpolation); empty for host libraries
    backends: the backends that can run it (empty: any)
    """

    name: str
    fn: Callable[[np.ndarray, int, int, ResizeSpec], np.ndarray]
    interpolations: tuple[str, ...]
    versions: Callable[[], dict[str, str]]  # library versions for the results rows
    requires: tuple[str, ...] = ()
    extra: str = ""
    in_model: str = ""
    backends: tuple[str, ...] = ()


RESIZERS: Registry[ResizerInfo] = Registry(
    "resize library", "evalharness.preprocess.resizers", entry_points="evalharness.resizers"
)


def register_resizer(
    name: str, interpolations, versions, requires=(), extra="", in_model="", backends=()
):
    def deco(fn):
        info = ResizerInfo(
            name, fn, tuple(interpolations), versions, tuple(requires), extra, in_model,
            tuple(backends),
        )  # fmt: skip
        RESIZERS.register(name)(info)
        return fn

    return deco


@dataclass(frozen=True)
class ResizeSpec:
    library: str
    interpolation: str
    size: tuple[int, int] | None  # the model input (height, width); None: any size
    antialias: bool = True  # only torchvision lets you choose; recorded for the others
    crop: str = "center"
    crop_pct: float = 0.875
    swap_hw: bool = False
    pad_value: int = 0
    limit_side_len: int = 0  # limit_* policies; 0 = the model size
    multiple: int = 32  # limit_* policies round each side to a multiple of this
    anchor: str = "center"  # letterbox: where the image sits in the padded frame

    def __post_init__(self) -> None:
        if isinstance(self.size, int):
            object.__setattr__(self, "size", (self.size, self.size))
        elif self.size is not None:
            object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        info = RESIZERS.get(self.library)
        if self.interpolation not in info.interpolations:
            kind = f"interpolation for {self.library}"
            raise ValueError(unknown_choice_message(kind, self.interpolation, info.interpolations))
        if self.crop not in CROPS:
            raise ValueError(unknown_choice_message("crop policy", self.crop, list(CROPS)))
        if self.anchor not in ANCHORS:
            raise ValueError(unknown_choice_message("letterbox anchor", self.anchor, ANCHORS))
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"resize.crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.multiple < 1:
            raise ValueError(f"resize.multiple must be at least 1, got {self.multiple}")
        if self.limit_side_len < 0:
            raise ValueError(f"resize.limit_side_len must be positive, got {self.limit_side_len}")
        if not 0 <= self.pad_value <= 255:
            raise ValueError(f"resize.pad_value must be in 0..255, got {self.pad_value}")
        limit = self.crop in ("limit_max", "limit_min")
        if self.size is None and not limit and self.crop != "none":
            raise ValueError(
                f"crop policy '{self.crop}' needs a model input size (card.input_size); a model "
                "that takes any size uses limit_max / limit_min"
            )
        if limit and self.size is None and not self.limit_side_len:
            raise ValueError(f"crop policy '{self.crop}' needs resize.limit_side_len")
        if info.in_model:
            self._check_in_model()

    def _check_in_model(self) -> None:
        """An in-model resize goes to the model's fixed input size, and nowhere else."""
        where = f"resize library '{self.library}' resamples inside the model"
        if self.size is None:
            raise ValueError(f"{where}: it needs a model with a fixed input size")
        if self.crop in ("limit_max", "limit_min", "letterbox_multiple", "none"):
            raise ValueError(f"{where} to its input size: crop policy '{self.crop}' cannot")
        if self.swap_hw:
            raise ValueError(f"{where}: swap_hw has no (width, height) call to swap")


def resized_hw(h: int, w: int, spec: ResizeSpec) -> tuple[int, int]:
    """(height, width) the library is asked to produce, before any crop or pad."""
    if spec.crop in ("limit_max", "limit_min"):
        limit = spec.limit_side_len or max(spec.size)
        return limited_hw(h, w, limit, spec.crop == "limit_max", spec.multiple)
    th, tw = spec.size
    if spec.crop == "squash":
        return th, tw
    if spec.crop == "squash_crop":
        return int(math.floor(th / spec.crop_pct)), int(math.floor(tw / spec.crop_pct))
    if spec.crop == "center":
        if th == tw:  # torchvision's Resize(int): the short side, the long one truncated
            target = int(math.floor(th / spec.crop_pct))
            if h <= w:
                return target, max(1, int(target * w / h))
            return max(1, int(target * h / w)), target
        s = max(th / h, tw / w) / spec.crop_pct  # cover the (non-square) crop, keep aspect
        return max(1, int(h * s)), max(1, int(w * s))
    if spec.crop == "letterbox_multiple":  # the long side exactly, the short one truncated
        side = max(th, tw)
        return (side, max(1, int(w * side / h))) if h >= w else (max(1, int(h * side / w)), side)
    scale = min(th / h, tw / w)  # letterbox: the long side to the model size
    if spec.anchor == "top_left":  # YOLOX: int(h * r), int(w * r)
        return max(1, int(h * scale)), max(1, int(w * scale))
    return max(1, round(h * scale)), max(1, round(w * scale))


def limited_hw(h: int, w: int, limit: int, is_max: bool, multiple: int) -> tuple[int, int]:
    """PaddleOCR DetResizeForTest (type 0) as rapidocr computes it: limit one side, round
    both to `multiple` (a side may round to 0: the caller refuses that image)."""
    if is_max:
        ratio = float(limit) / max(h, w) if max(h, w) > limit else 1.0
    else:
        ratio = float(limit) / min(h, w) if min(h, w) < limit else 1.0
    rh, rw = int(h * ratio), int(w * ratio)
    return int(round(rh / multiple) * multiple), int(round(rw / multiple) * multiple)


def _shift(n: int, out: int, anchor: str) -> int:
    """Where an axis of n pixels starts in an axis of `out` (negative: cropped away)."""
    if anchor == "top_left":
        return 0
    if n > out:  # torchvision CenterCrop: round((n - out) / 2) cut from the start
        return -int(round((n - out) / 2.0))
    return (out - n) // 2  # ... and its padding puts the odd pixel at the end


def crop_or_pad(frame: Frame, out_hw: tuple[int, int], value: int, anchor: str) -> Frame:
    """Place the frame's pixels in an out_hw canvas: centre-crop what is larger, pad what is
    smaller (torchvision's CenterCrop arithmetic), or from the top-left corner."""
    h, w = frame.pixels.shape[:2]
    top, left = _shift(h, out_hw[0], anchor), _shift(w, out_hw[1], anchor)
    return place(frame, left, top, out_hw, value)


def place(frame: Frame, left: int, top: int, out_hw: tuple[int, int], value: int) -> Frame:
    """The frame's pixels at (left, top) of an out_hw canvas filled with `value`."""
    arr = frame.pixels
    h, w = arr.shape[:2]
    oh, ow = out_hw
    out = np.full((oh, ow, arr.shape[2]), value, dtype=arr.dtype)
    sy0, dy0 = max(0, -top), max(0, top)
    sx0, dx0 = max(0, -left), max(0, left)
    ch, cw = min(h - sy0, oh - dy0), min(w - sx0, ow - dx0)
    out[dy0 : dy0 + ch, dx0 : dx0 + cw] = arr[sy0 : sy0 + ch, sx0 : sx0 + cw]
    return Frame(out, frame.geometry.then_shift(left, top, out_hw))


def resize(arr: np.ndarray, spec: ResizeSpec) -> Frame:
    src_hw = (arr.shape[0], arr.shape[1])
    frame = Frame(arr, Geometry.identity(src_hw))
    if spec.library == "none" or spec.crop == "none":  # no resampling
        if spec.size is None or src_hw == spec.size:
            return frame
        return crop_or_pad(frame, spec.size, 0, "center")
    if RESIZERS.get(spec.library).in_model:
        return frame_for_model(frame, spec)
    h, w = resized_hw(*src_hw, spec)
    if h < 1 or w < 1:  # a limit policy rounded a side to 0 (rapidocr: no detections)
        raise StageError(
            "resize", f"{spec.crop} rounds {src_hw[0]}x{src_hw[1]} to {h}x{w} (a side of 0 px)"
        )
    if spec.swap_hw:  # the bug: (h, w) handed to an API that reads (w, h)
        h, w = w, h
    out = RESIZERS.get(spec.library).fn(arr, h, w, spec)
    # The transform is what the library really produced, not what was meant.
    frame = Frame(out, frame.geometry.then_resize((out.shape[0], out.shape[1])))
    if spec.crop == "letterbox_multiple":  # the canvas: the next multiple up, per side
        m = spec.multiple
        rh, rw = frame.pixels.shape[:2]
        return crop_or_pad(frame, (-(-rh // m) * m, -(-rw // m) * m), spec.pad_value, spec.anchor)
    if spec.size is None or (frame.pixels.shape[:2] == spec.size and spec.crop != "letterbox"):
        return frame
    value = spec.pad_value if spec.crop == "letterbox" else 0
    anchor = spec.anchor if spec.crop == "letterbox" else "center"
    return crop_or_pad(frame, spec.size, value, anchor)


def policy_geometry(src_hw: tuple[int, int], spec: ResizeSpec) -> Geometry:
    """The transform the crop policy applies with a host resize, from the sizes alone."""
    h, w = resized_hw(*src_hw, spec)
    g = Geometry.identity(src_hw).then_resize((h, w))
    if (h, w) == spec.size and spec.crop != "letterbox":
        return g
    anchor = spec.anchor if spec.crop == "letterbox" else "center"
    oh, ow = spec.size
    return g.then_shift(_shift(w, ow, anchor), _shift(h, oh, anchor), spec.size)


def frame_for_model(frame: Frame, spec: ResizeSpec) -> Frame:
    """Framing for a resize the model does itself (to its input size, every axis scaled).

    The policy's transform says which window of the source the model input shows (for
    center: the middle crop_pct; for letterbox: the image plus padding to the model's
    aspect). The host cuts or pads the source to that window, rounded to whole pixels, with
    no resampling; the compiled model then resizes the window to its input size. The
    Geometry is computed from the window actually cut, so it is exact for what the model sees.
    """
    src_h, src_w = frame.pixels.shape[:2]
    g = policy_geometry((src_h, src_w), spec)
    (sx, sy), (ox, oy) = g.scale, g.offset
    oh, ow = spec.size
    x0, x1 = round(-ox / sx), round((ow - ox) / sx)
    y0, y1 = round(-oy / sy), round((oh - oy) / sy)
    win_hw = (max(1, y1 - y0), max(1, x1 - x0))
    value = spec.pad_value if spec.crop == "letterbox" else 0
    window = place(frame, -x0, -y0, win_hw, value)
    return Frame(window.pixels, window.geometry.then_resize(spec.size))


def center_crop(arr: np.ndarray, size: int) -> np.ndarray:
    """torchvision's CenterCrop arithmetic on a bare array (pads with zeros if smaller)."""
    frame = Frame(arr, Geometry.identity((arr.shape[0], arr.shape[1])))
    return crop_or_pad(frame, (size, size), 0, "center").pixels


# The built-in resize libraries register themselves on import.
from evalharness.preprocess import resizers  # noqa: E402, F401
