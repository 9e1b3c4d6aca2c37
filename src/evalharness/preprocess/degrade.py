"""Degradations: a model input made from a clean image, on the fly and reproducibly.

A dataset of clean images only (`kind: image_clean`) states how its inputs are made; the
plan appends one `degrade` stage to the host pipeline, after normalize, so it acts on the
float CHW tensor in [0, 1] that image-to-image models take (meanstd `unit`):

- noise:     x + N(0, sigma / 255), the stream of the legacy `np.random.RandomState(seed)`
             re-seeded for every image, drawn in float64 and added to float32, not clipped:
             DnCNN's authors' protocol (KAIR main_test_dncnn.py), which gives their table's
             figure (DnCNN-25, Set12: 30.4316 dB). A grey image decoded as RGB (three equal
             channels) gets one noise plane on every channel, the draws KAIR makes for the
             (H, W, 1) image, so the channel a grey model reads is KAIR's input exactly; a
             colour image gets (H, W, 3) draws in that order, as KAIR's colour test.
- downscale: the image cropped to a multiple of `scale` (the SR papers' modcrop), then
             resampled to 1/scale by the `resize` factor's library and filter (Pillow
             bicubic is the usual stand-in for MATLAB's imresize): the resize factor is the
             degradation's resize here, swept like any other. The tensor goes back to 8 bits
             first (x * 255 rounds back to the decoded values exactly) and the LR image is
             8-bit, as a saved LR file is.

The stage is a pure function of its input array and spec (the seed does not depend on the
sample), so the engine's memo and deduplication hold for it as for any other stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalharness.preprocess.errors import StageError
from evalharness.preprocess.geometry import Frame
from evalharness.preprocess.resize import RESIZERS, ResizeSpec

KINDS = ("noise", "downscale")


@dataclass(frozen=True)
class DegradeSpec:
    kind: str
    sigma: float = 0.0  # noise: standard deviation in 8-bit levels
    seed: int = 0  # noise: the RandomState seed, the same for every image
    clip: bool = False  # noise: clip to [0, 1] after adding (KAIR does not)
    scale: int = 1  # downscale: the factor
    library: str = ""  # downscale: the resize factor's library ...
    interpolation: str = ""  # ... and filter
    antialias: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"degradation kind must be one of {KINDS}, got '{self.kind}'")
        if self.kind == "noise" and not self.sigma > 0:
            raise ValueError(f"degradation noise needs sigma > 0, got {self.sigma}")
        if self.kind == "downscale" and self.scale < 2:
            raise ValueError(f"degradation downscale needs scale >= 2, got {self.scale}")


def degrade_spec(settings: Mapping[str, Any], resize: Mapping[str, Any]) -> DegradeSpec:
    """The spec of the `degrade` stage for a dataset's degradation settings; a downscale
    takes its resampling from the config's resize option, which must resample (not `none`)."""
    kind = str(settings.get("kind", ""))
    if kind == "downscale":
        if resize.get("library") in (None, "none"):
            raise ValueError(
                f"the dataset makes its inputs by a x{settings.get('scale')} downscale: pick "
                "the resize that does it (resize=pil_bicubic, cv2_cubic, ...), not none"
            )
        if RESIZERS.get(str(resize["library"])).in_model:
            raise ValueError(f"resize '{resize['name']}' runs inside the model, not on the data")
        spec = DegradeSpec(
            kind,
            scale=int(settings.get("scale", 4)),
            library=str(resize["library"]),
            interpolation=str(resize["interpolation"]),
            antialias=bool(resize.get("antialias", True)),
        )
    else:
        spec = DegradeSpec(
            kind,
            sigma=float(settings.get("sigma", 0.0)),
            seed=int(settings.get("seed", 0)),
            clip=bool(settings.get("clip", False)),
        )
    return spec


def _is_grey(chw: np.ndarray) -> bool:
    return chw.shape[0] == 1 or all(np.array_equal(chw[0], c) for c in chw[1:])


def add_noise(chw: np.ndarray, spec: DegradeSpec) -> np.ndarray:
    """KAIR's noisy input for a (C, H, W) float32 tensor in [0, 1] (see module doc)."""
    _, h, w = chw.shape
    rng = np.random.RandomState(spec.seed)
    if _is_grey(chw):
        noise = rng.normal(0.0, spec.sigma / 255.0, (h, w))[None]
    else:
        noise = rng.normal(0.0, spec.sigma / 255.0, (h, w, chw.shape[0])).transpose(2, 0, 1)
    out = chw.astype(np.float32, copy=True)
    out += noise  # float32 += float64, as KAIR's img_L += np.random.normal(...)
    if spec.clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def downscale(chw: np.ndarray, spec: DegradeSpec) -> np.ndarray:
    """modcrop, then resample to 1/scale with the resize library, as 8-bit; (C, H, W) out."""
    s = spec.scale
    _, h, w = chw.shape
    if h < s or w < s:
        raise StageError("degrade", f"image {h}x{w} is smaller than the x{s} downscale")
    hwc = np.round(chw[:, : h - h % s, : w - w % s].transpose(1, 2, 0) * 255.0)
    arr = np.ascontiguousarray(hwc.clip(0, 255).astype(np.uint8))
    rspec = ResizeSpec(spec.library, spec.interpolation, None, spec.antialias, crop="none")
    small = RESIZERS.get(spec.library).fn(arr, h // s, w // s, rspec)
    small = small.reshape(h // s, w // s, -1)
    return np.ascontiguousarray(small.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def degrade(frame: Frame, spec: DegradeSpec) -> Frame:
    """The degradation of one normalized frame (pixels (C, H, W) float32 in [0, 1])."""
    x = frame.pixels
    if x.ndim != 3 or x.dtype != np.float32:
        raise StageError(
            "degrade", f"needs the normalized float (C, H, W) tensor, got {x.dtype} {x.shape}"
        )
    if spec.kind == "noise":
        return frame.with_pixels(add_noise(x, spec))
    out = downscale(x, spec)
    return Frame(out, frame.geometry.then_resize((out.shape[1], out.shape[2])))
