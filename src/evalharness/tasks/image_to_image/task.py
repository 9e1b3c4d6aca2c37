"""The image_to_image Task: upscalers and restorers scored as their papers score them, and
every config's output compared with the reference config's.

A sample is an input image and, where the dataset has one, a target (paired `HR/` +
`LRx4/` folders; a clean image whose input the dataset generates; none for an input-only
set). The model runs through `ImageSession` (session.py: tiles, padding, the output
guard); `predict` scores each output:

- against the target (metrics.py, BasicSR's protocol): `psnr_y`, `ssim_y` on Y with
  `shave` pixels cut at each border (the scale for SR, 0 for a denoiser), `psnr_rgb` when
  `postprocess.rgb_psnr` is set. A target one scale step larger than scale x input (an HR
  image that is not a multiple of the scale) is cropped as the papers' modcrop does;
  any other size mismatch is an error row naming both sizes;
- against the reference config's output for the same input (the engine hands it over):
  `max_abs_ref`, `mse_ref` (clipped images, range 1), `psnr_ref`, and `n_outside` of
  `n_elements` outside the tolerance (chaiNNer's rtol 1e-3 / atol 1e-5, numpy's rule:
  |d| > atol + rtol |ref|), `within_tol` when none is.

Summary (one row per config): `psnr_y`, `ssim_y` with 95% bootstrap intervals over images
(the per-image mean, as the tables are); `psnr_ref` pooled over every element and
`psnr_ref_worst` (the worst image), `max_abs_ref`, `tol_fail` (percent of elements outside
the tolerance, mean over images, with its interval). `agree_ref` (the engine's) is the share
of images wholly within the tolerance of the reference's output. A config with an error row
gets no `psnr_y` (NaN, `n_errors` says why): a mean over the images that ran is not the
set's figure, and a wrong-sized output is never scored.

Per-image score for paired tests and flips: psnr_y rounded to 0.001 dB (a difference below
that is "the same"); agreement between two configs: both within tolerance of the reference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from evalharness.preprocess.geometry import Frame
from evalharness.tasks.base import TASKS, Task
from evalharness.tasks.drawing import Described, DrawInput, Overlay, Panel
from evalharness.tasks.image_to_image import metrics as mt
from evalharness.tasks.image_to_image.session import ERROR, IMAGE, ImageSession, RunSettings
from evalharness.tasks.image_to_image.views import Views, views

if TYPE_CHECKING:  # pandas loads when a table is read, not when a task registers
    import pandas as pd

FLOAT_COLUMNS = ("psnr_y", "ssim_y", "psnr_rgb", "max_abs_ref", "mse_ref", "psnr_ref")
RULES = ("numpy", "polygraphy")


@dataclass(frozen=True)
class ScoreSettings:
    """model.postprocess of an image-to-image model (all optional)."""

    shave: int | None = None  # None: the scale for an upscaler, 0 for scale 1
    rgb_psnr: bool = False
    rtol: float = mt.CHAINNER_RTOL
    atol: float = mt.CHAINNER_ATOL
    tol_rule: str = "numpy"

    @classmethod
    def of(cls, settings: dict[str, Any], name: str = "") -> ScoreSettings:
        known = {"shave", "rgb_psnr", "rtol", "atol", "tol_rule"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(
                f"model '{name}': unknown postprocess setting(s) {', '.join(unknown)} for "
                f"image_to_image (valid: {', '.join(sorted(known))})"
            )
        out = cls(
            shave=None if settings.get("shave") is None else int(settings["shave"]),
            rgb_psnr=bool(settings.get("rgb_psnr", False)),
            rtol=float(settings.get("rtol", mt.CHAINNER_RTOL)),
            atol=float(settings.get("atol", mt.CHAINNER_ATOL)),
            tol_rule=str(settings.get("tol_rule", "numpy")),
        )
        if out.tol_rule not in RULES:
            raise ValueError(f"model '{name}': tol_rule must be one of {RULES}")
        if out.rtol < 0 or out.atol < 0 or (out.shave is not None and out.shave < 0):
            raise ValueError(f"model '{name}': rtol, atol and shave must be >= 0")
        return out


@dataclass
class ImageRecords:
    """Per-image values of one config, in sample order (NaN where there is none)."""

    psnr_y: np.ndarray
    ssim_y: np.ndarray
    psnr_rgb: np.ndarray
    max_abs_ref: np.ndarray
    mse_ref: np.ndarray
    n_outside: np.ndarray
    n_elements: np.ndarray
    within_tol: np.ndarray

    @classmethod
    def from_predictions(cls, preds: pd.DataFrame) -> ImageRecords:
        def col(name: str) -> np.ndarray:
            return preds[name].to_numpy(dtype=np.float64, na_value=np.nan)

        within = preds["within_tol"].to_numpy(dtype=bool, na_value=False)
        return cls(
            col("psnr_y"), col("ssim_y"), col("psnr_rgb"), col("max_abs_ref"), col("mse_ref"),
            col("n_outside"), col("n_elements"), within,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.psnr_y)

    @property
    def outside_share(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_elements > 0, self.n_outside / self.n_elements, np.nan)


def _mean_with_interval(values: np.ndarray, idx: np.ndarray, name: str) -> dict[str, float]:
    """name, name_lo, name_hi: the per-image mean and its bootstrap interval; NaN when any
    image has no value (an error row): a mean over part of the set is not its figure."""
    if len(values) == 0 or not np.all(np.isfinite(values)):
        return {name: np.nan, f"{name}_lo": np.nan, f"{name}_hi": np.nan}
    mean, lo, hi = mt.mean_interval(values, idx)
    return {name: mean, f"{name}_lo": lo, f"{name}_hi": hi}


@functools.lru_cache(maxsize=32)
def _read_target(path: str, grey: bool, mtime_ns: int) -> np.ndarray:
    """The 8-bit target image (H, W, 3) RGB or (H, W) grey, read once per file version."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("L" if grey else "RGB"))


class ImageToImage(Task):
    name = "image_to_image"
    roles = (IMAGE,)
    metric = "psnr_y"
    metric_columns = (
        "psnr_y", "psnr_y_lo", "psnr_y_hi", "ssim_y", "ssim_y_lo", "ssim_y_hi", "psnr_rgb",
        "psnr_ref", "psnr_ref_worst", "max_abs_ref", "tol_fail", "tol_fail_lo", "tol_fail_hi",
    )  # fmt: skip
    unit = "dB"
    number_format = "{:+.3f}"
    column_formats = (
        ("psnr_y", "{:7.4f}"), ("ssim_y", "{:.4f}"), ("psnr_rgb", "{:7.4f}"),
        ("psnr_ref", "{:6.1f}"), ("psnr_ref_worst", "{:6.1f}"), ("max_abs_ref", "{:7.1e}"),
        ("tol_fail", "{:6.2f}"),
    )  # fmt: skip
    factors = ("tile",)
    needs_reference_output = True
    task_schema = [
        ("psnr_y", pa.float64()),
        ("ssim_y", pa.float64()),
        ("psnr_rgb", pa.float64()),
        ("max_abs_ref", pa.float64()),
        ("mse_ref", pa.float64()),
        ("psnr_ref", pa.float64()),
        ("n_outside", pa.int64()),
        ("n_elements", pa.int64()),
        ("within_tol", pa.bool_()),
        ("out_h", pa.int64()),
        ("out_w", pa.int64()),
    ]

    def __init__(self, scale: int = 1, channels: int = 3, score: ScoreSettings | None = None):
        self.scale, self.channels = scale, channels
        self.score = score or ScoreSettings()

    def for_model(self, model: Any) -> Task:
        settings = dict(getattr(model, "postprocess", ()) or ())
        score = ScoreSettings.of(settings, getattr(model, "name", ""))
        # a run's analysis binds the task to the recorded settings only (no model file):
        # scale and channels matter for scoring, which is done by then
        scale = int(getattr(model, "scale", 1) or 1)
        return ImageToImage(scale, int(getattr(model, "out_channels", 3) or 3), score)

    @property
    def shave(self) -> int:
        if self.score.shave is not None:
            return self.score.shave
        return self.scale if self.scale > 1 else 0

    def check_dataset(self, dataset: Any, model: Any) -> None:
        degradation = dataset.extra.get("degradation") or {}
        if degradation.get("kind") == "downscale" and int(degradation["scale"]) != model.scale:
            raise ValueError(
                f"dataset '{dataset.name}' makes its inputs by a x{degradation['scale']} "
                f"downscale; model '{model.name}' upscales x{model.scale}"
            )

    def wrap_session(self, session: Any, variant: Any) -> ImageSession:
        wrapped = ImageSession(session, RunSettings.of(variant), variant.model.output_for(IMAGE))
        wrapped.probe_odd_size()
        return wrapped

    def read_outputs(self, outputs: dict[str, np.ndarray], model: Any) -> dict[str, np.ndarray]:
        return {IMAGE: outputs[IMAGE], ERROR: outputs[ERROR]}

    def check_outputs(self, outputs: dict[str, np.ndarray], model: Any, dataset: Any) -> None:
        error = str(outputs[ERROR][0])
        if error:
            raise ValueError(f"model '{model.name}' does not run on a 64x64 probe: {error}")

    def predict(
        self,
        outputs: dict[str, np.ndarray],
        frames: list[Frame],
        samples: list[Any],
        reference: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        reference = reference or [None] * len(samples)
        out = []
        for k, sample in enumerate(samples):
            error = str(outputs[ERROR][k])
            if error:
                stage, _, reason = error.partition(": ")
                out.append(dict(self.failed(sample), error_stage=stage, error=reason))
                continue
            try:
                out.append(self._record(outputs[IMAGE][k][None], sample, reference[k]))
            except ValueError as err:  # a target of another size, an image too small
                out.append(dict(self.failed(sample), error_stage="score", error=str(err)))
        return out

    def _record(self, image: np.ndarray, sample: Any, ref: Any) -> dict[str, Any]:
        nan = float("nan")
        rec: dict[str, Any] = dict(psnr_y=nan, ssim_y=nan, psnr_rgb=nan)
        if sample.target is not None:
            target = self.target_image(sample.target, image.shape[2:])
            scored = mt.score_image(mt.output_to_image(image), target, self.shave,
                                    self.score.rgb_psnr)  # fmt: skip
            rec.update(scored.as_record())
        rec.update(max_abs_ref=nan, mse_ref=nan, psnr_ref=nan, n_outside=0, n_elements=0,
                   within_tol=False)  # fmt: skip
        ref_image = None if ref is None or str(ref[ERROR]) else ref[IMAGE][None]
        if ref_image is not None and ref_image.shape == image.shape:
            s = self.score
            comp = mt.compare_to_reference(image, ref_image, s.rtol, s.atol, s.tol_rule)
            rec.update(max_abs_ref=comp.max_abs, mse_ref=comp.mse, psnr_ref=comp.psnr_ref,
                       n_outside=comp.n_outside, n_elements=comp.n_elements,
                       within_tol=comp.within_tol)  # fmt: skip
        rec.update(out_h=int(image.shape[2]), out_w=int(image.shape[3]))
        return rec

    def target_image(self, target: Any, out_hw: tuple[int, ...]) -> np.ndarray:
        """The 8-bit target, modcropped to the output size (see module doc)."""
        path = Path(target.path)
        img = _read_target(str(path), self.channels == 1, path.stat().st_mtime_ns)
        (h, w), (th, tw) = out_hw, img.shape[:2]
        step = max(self.scale, 1)
        if not (0 <= th - h < step and 0 <= tw - w < step):
            raise ValueError(
                f"target {target.sample_id} is {th}x{tw}, the output {h}x{w} (scale "
                f"{self.scale} x input): they do not match"
            )
        return img[:h, :w]

    def failed(self, sample: Any) -> dict[str, Any]:
        nan = float("nan")
        row: dict[str, Any] = {c: nan for c in FLOAT_COLUMNS}
        row.update(n_outside=0, n_elements=0, within_tol=False, out_h=0, out_w=0)
        return row

    def summarize(self, preds: pd.DataFrame, dataset: Any, idx: np.ndarray) -> dict[str, float]:
        rec = self.records(preds, dataset)
        out = _mean_with_interval(rec.psnr_y, idx, "psnr_y")
        out.update(_mean_with_interval(rec.ssim_y, idx, "ssim_y"))
        out["psnr_rgb"] = float(np.mean(rec.psnr_rgb)) if len(rec) else np.nan
        compared = len(rec) > 0 and bool(np.all(rec.n_elements > 0))
        if compared:
            pooled = np.sum(rec.mse_ref * rec.n_elements) / np.sum(rec.n_elements)
            out["psnr_ref"] = float(mt.psnr_from_mse(pooled, 1.0))
            out["psnr_ref_worst"] = float(mt.psnr_from_mse(np.max(rec.mse_ref), 1.0))
            out["max_abs_ref"] = float(np.max(rec.max_abs_ref))
        else:
            out.update(psnr_ref=np.nan, psnr_ref_worst=np.nan, max_abs_ref=np.nan)
        share = rec.outside_share * 100.0 if compared else np.full(len(rec), np.nan)
        out.update(_mean_with_interval(share, idx, "tol_fail"))
        return out

    def records(self, preds: pd.DataFrame, dataset: Any) -> ImageRecords:
        return ImageRecords.from_predictions(preds)

    def value(self, records: ImageRecords, idx: np.ndarray) -> np.ndarray:
        return records.psnr_y[idx].mean(axis=1)

    def n_images(self, records: ImageRecords) -> int:
        return len(records)

    def image_scores(self, records: ImageRecords) -> np.ndarray:
        return np.round(records.psnr_y, 3)

    def agree(self, a: ImageRecords, b: ImageRecords) -> np.ndarray:
        return a.within_tol & b.within_tol

    def views(
        self,
        model_input: np.ndarray,
        output: np.ndarray,
        reference: np.ndarray | None,
        tile_size: int = 0,
        overlap: int = 0,
        gain: float | None = None,
    ) -> Views:
        """What the report draws for one image (views.py): the input, both outputs and the
        amplified |output - reference| with the tile seams marked."""
        return views(model_input, output, reference, self.scale, tile_size, overlap, gain)

    # ------------------------------------------------------------------ the report's view

    def describe(self, row: Any, classes: Any = ()) -> Described:
        """PSNR_Y against the target (or, for an input-only set, against the reference)."""
        psnr, ref = _number(row.get("psnr_y")), _number(row.get("psnr_ref"))
        text = f"PSNR_Y {psnr:.3f} dB" if np.isfinite(psnr) else "no target"
        if np.isfinite(ref):
            text += f", {ref:.1f} dB vs the reference output"
        return Described(text, psnr if np.isfinite(psnr) else ref)

    def draw(self, item: DrawInput) -> list[Panel]:
        """The config's output image as saved (clipped, rounded), beside the model's input
        the report already shows; |A - B| of the outputs is the report's own difference."""
        out = (item.outputs or {}).get(IMAGE)
        if out is None:
            return []
        image = mt.output_to_image(out)
        if image.ndim == 2:  # a grey model (DnCNN)
            image = np.repeat(image[..., None], 3, axis=2)
        h, w = image.shape[:2]
        return [Overlay(image, (), f"output {w}x{h}")]


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


TASKS.register("image_to_image")(ImageToImage())
