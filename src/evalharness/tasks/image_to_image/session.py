"""How an image-to-image model is run inside the engine: around the backend's session, the
way chaiNNer runs an upscaler -- one image at a time, in tiles if asked, padded to the
model's size multiple if asked, every output checked.

The engine hands each variant's session a batch of host tensors (N, 3, H, W) float32 in
[0, 1] (decode -> no resize -> RGB -> x / 255, and a degradation for generated sets); the
`ImageSession` runs each image through

    channels (RGB -> the model's channels) -> tiles (`tile.size`, `tile.overlap`) ->
    padding to the size multiple (`tile.pad`) -> the backend -> the shape/finiteness guard

and returns two outputs: "image" (N, C', s*H, s*W) and "eh_error", one string per image
("" when it ran). An image a runtime cannot run (an exception at that size) or whose output
is not scale x input (or holds NaN/Inf) is not an exception for the sweep: its output is
NaN and its error names the sizes, and the task turns it into an error row. So a wrong-sized
image is never scored, and every other image of the run still is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evalharness.models.sizes import odd_hw
from evalharness.tasks.image_to_image.export import (
    OutputCheckError,
    check_output,
    error_reason,
    guarded,
)
from evalharness.tasks.image_to_image.tiling import PadMode, padded, run_tiled

ERROR = "eh_error"  # the per-image error output next to "image"
IMAGE = "image"
PAD_MODES = ("none", "reflect", "replicate", "constant")
# BT.601 luma, as OpenCV's RGB2GRAY (what chaiNNer does to feed a grey model a colour image)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class RunSettings:
    """How each image is fed to the model: from the model (scale, channels, size multiple)
    and the variant's `tile` options (size 0: the whole image)."""

    scale: int = 1
    in_channels: int = 3
    out_channels: int = 3
    multiple: int = 1
    tile_size: int = 0
    overlap: int = 0
    pad: str = "none"

    def __post_init__(self) -> None:
        if self.pad not in PAD_MODES:
            raise ValueError(f"tile.pad must be one of {PAD_MODES}, got {self.pad!r}")
        for name in ("tile_size", "overlap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"tile.{name.replace('tile_', '')} must be >= 0, got {value!r}")

    @classmethod
    def of(cls, variant: Any) -> RunSettings:
        model = variant.model
        return cls(
            scale=model.scale,
            in_channels=model.channels,
            out_channels=model.out_channels,
            multiple=model.size_multiple,
            tile_size=_int(variant.option("tile.size", 0)),
            overlap=_int(variant.option("tile.overlap", 0)),
            pad=str(variant.option("tile.pad", "none")),
        )

    def describe(self) -> str:
        tiles = f"tiles {self.tile_size} px, overlap {self.overlap}" if self.tile_size else ""
        pad = f"padded ({self.pad}) to a multiple of {self.multiple}" if self.pads else ""
        return "; ".join(p for p in (tiles, pad) if p) or "whole image"

    @property
    def pads(self) -> bool:
        return self.pad != "none" and self.multiple > 1


def _int(value: Any) -> Any:
    """A swept setting arrives as text ("64"): a whole number, else left for the check."""
    try:
        return int(str(value)) if not isinstance(value, bool) else value
    except ValueError:
        return value


def to_channels(chw: np.ndarray, channels: int) -> np.ndarray:
    """(C, H, W) -> (channels, H, W): a grey image decoded as RGB (three equal channels)
    gives its one channel exactly; a colour image fed to a grey model its BT.601 luma; a
    grey image fed to a colour model is repeated."""
    if chw.shape[0] == channels:
        return chw
    if channels == 1:
        if all(np.array_equal(chw[0], c) for c in chw[1:]):
            return chw[:1]
        return np.tensordot(LUMA, chw[:3], axes=1)[None].astype(np.float32)
    if chw.shape[0] == 1:
        return np.repeat(chw, channels, axis=0)
    raise ValueError(f"cannot feed a {chw.shape[0]}-channel image to a {channels}-channel model")


class ImageSession:
    """The backend's session, run image by image as `RunSettings` say (module doc)."""

    def __init__(self, inner: Any, settings: RunSettings, output: str | None = None) -> None:
        self.inner, self.settings, self.output = inner, settings, output
        self.input = type(inner.input)(inner.input.name, (None, None, None, None))
        self.precision_ran = inner.precision_ran
        self.notes = tuple(inner.notes) + (f"image-to-image: {settings.describe()}",)
        self.thread_safe = inner.thread_safe
        self.build_seconds = inner.build_seconds

    def probe_odd_size(self) -> str:
        """Run this config once at a size no declared multiple divides (37x41 for most
        models) and say what happened, in the session's notes: whether the export really
        takes any size is known before any image of the set, not only from its error rows."""
        h, w = odd_hw(self.settings.multiple)
        x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
        error = str(self.infer(x)[ERROR][0])
        note = f"odd-size probe {h}x{w}: " + (error or "ran, output of the right size")
        self.notes += (note,)
        return note

    def _model(self, x: np.ndarray) -> np.ndarray:
        """The backend on one (1, C, h, w) array -> its image output."""
        outs = self.inner.infer(np.ascontiguousarray(x, dtype=np.float32))
        if self.output is not None and self.output in outs:
            return outs[self.output]
        return next(iter(outs.values()))

    def run_one(self, x: np.ndarray) -> np.ndarray:
        """One (1, C, H, W) image through tiles, padding, the model and the guard."""
        s = self.settings
        fn = guarded(self._model, s.scale, s.out_channels)
        if s.pads:
            pad: PadMode = s.pad  # type: ignore[assignment]
            fn = padded(fn, s.multiple, s.scale, pad)
        if s.tile_size:
            out = run_tiled(fn, x, s.tile_size, s.overlap, s.scale)
        else:
            out = fn(x)
        check_output(out, x.shape[2:], s.scale, s.out_channels)
        return out

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        s = self.settings
        images, errors = [], []
        for chw in batch:
            x = to_channels(np.asarray(chw, np.float32), s.in_channels)[None]
            h, w = x.shape[2:]
            try:
                out, error = self.run_one(x), ""
            except OutputCheckError as err:
                out, error = None, f"output: {err}"
            except Exception as err:  # the runtime's failure at this size is the result
                error = (
                    f"infer: input {h}x{w} gave no output (expected {h * s.scale}x"
                    f"{w * s.scale}): {type(err).__name__}: {error_reason(err)}"
                )
                out = None
            if out is None:
                out = np.full((1, s.out_channels, h * s.scale, w * s.scale), np.nan, np.float32)
            images.append(out[0].astype(np.float32, copy=False))
            errors.append(error)
        return {IMAGE: np.stack(images), ERROR: np.array(errors, dtype=object)}
