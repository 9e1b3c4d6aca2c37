"""The text_detection Task: DB post-processing, the ICDAR 2015 protocol, hmean with intervals.

Reads one output, `prob_map` (the model's [N, 1, H, W] text probability map; the model config
names it). Per sample, `predict` runs DB (db.py) on the map, maps the quadrilaterals to the
source image through the sample's Geometry, and matches them to the ground truth (protocol.py).

Prediction columns (predictions.parquet, one row per image x config):
- matched, n_gt_care, n_det_care: the per-image counts every statistic re-aggregates;
- n_det: detections DB returned (ignored and invalid ones included);
- polygons: each detection as [x1, y1, ..., x4, y4] in source-image pixels (clockwise from the
  top-left, whole pixels, as PaddleOCR outputs them); scores: DB box scores;
- det_match: per detection, the index of the ground-truth word it matched (its line in the
  gt file, '###' words counted), -1 a false alarm, -2 ignored (inside a '###' word), -3 not a
  valid polygon (skipped); det_iou: IoU with its word, or the best IoU with any care word.
A sample that failed a stage (decode, resize) has no detections: its care words are misses.

Summary columns, in points (percent, 0-100, like top1 and agree_ref; the RRC script prints
fractions: hmean 39.52 here is its 0.3952): text_precision, text_recall, hmean, each with
_lo/_hi, a 95% percentile bootstrap over images (the summary's one index matrix, so
intervals of differences stay paired).

Per-image score (image_scores, for paired sign tests and flips): the image's F,
2 * matched / (n_gt_care + n_det_care), and 1 for an image with neither care words nor counted
detections. An image is "worse" in B when its F drops.

Agreement (agree, agree_ref): an image's outcome is unchanged when B matches exactly the same
set of ground-truth words as A (the same words, not only as many) and makes the same number
of false alarms (care detections that matched no word); detections ignored inside '###'
regions do not count. agree_ref is the share of images whose outcome equals the reference
config's.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from evalharness.preprocess.geometry import Frame
from evalharness.tasks.base import TASKS, Task
from evalharness.tasks.drawing import Described, DrawInput, Heat, Overlay, Panel, Shape
from evalharness.tasks.text_detection.db import DBParams, binarize, detect
from evalharness.tasks.text_detection.protocol import match_image
from evalharness.tasks.text_detection.records import TextRecords

if TYPE_CHECKING:  # pandas loads when a table is read, not when a task registers
    import pandas as pd

NEEDS = ("shapely", "pyclipper")


def _words(target: Any) -> tuple[np.ndarray, np.ndarray]:
    """A sample's ground truth as (g, k, 2) polygons and (g,) don't-care flags."""
    if target is None or not target.polygons:
        return np.zeros((0, 4, 2)), np.zeros(0, bool)
    polys = np.array(target.polygons, dtype=np.float64).reshape(len(target.polygons), -1, 2)
    return polys, np.array(target.dont_care, dtype=bool)


def _check_installed() -> None:
    missing = [m for m in NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(
            f"text detection needs {', '.join(missing)}: pip install 'evalharness[text]'"
        )


class TextDetection(Task):
    name = "text_detection"
    roles = ("prob_map",)
    metric = "hmean"
    metric_columns = (
        "text_precision", "text_precision_lo", "text_precision_hi",
        "text_recall", "text_recall_lo", "text_recall_hi",
        "hmean", "hmean_lo", "hmean_hi",
    )  # fmt: skip
    task_schema = [
        ("matched", pa.int64()),
        ("n_gt_care", pa.int64()),
        ("n_det_care", pa.int64()),
        ("n_det", pa.int64()),
        ("polygons", pa.list_(pa.list_(pa.float32()))),
        ("scores", pa.list_(pa.float32())),
        ("det_match", pa.list_(pa.int32())),
        ("det_iou", pa.list_(pa.float32())),
    ]

    def __init__(self, params: DBParams | None = None) -> None:
        self.params = params or DBParams()

    def for_model(self, model: Any) -> Task:
        _check_installed()
        settings = dict(getattr(model, "postprocess", ()) or ())
        return TextDetection(DBParams.from_settings(settings, getattr(model, "name", "")))

    def check_outputs(self, outputs: dict[str, np.ndarray], model: Any, dataset: Any) -> None:
        prob = self.read_outputs(outputs, model)["prob_map"]
        if not (prob.ndim == 4 and prob.shape[1] == 1 or prob.ndim == 3):
            raise ValueError(
                f"model '{model.name}' outputs shape {tuple(prob.shape)}; text detection "
                "needs a probability map [N, 1, H, W]"
            )
        if prob.size and (np.nanmin(prob) < 0 or np.nanmax(prob) > 1):
            raise ValueError(
                f"model '{model.name}': output '{model.output_for('prob_map')}' is not a "
                "probability map (values outside 0..1); DB thresholds need one"
            )

    def predict(
        self, outputs: dict[str, np.ndarray], frames: list[Frame], samples: list[Any]
    ) -> list[dict[str, Any]]:
        maps = outputs["prob_map"]
        maps = maps[:, 0] if maps.ndim == 4 else maps
        out = []
        for prob, frame, sample in zip(maps, frames, samples, strict=True):
            if not np.isfinite(prob).all():
                rec = self.failed(sample)
                rec.update(error_stage="infer", error="non-finite model output")
                out.append(rec)
                continue
            det = detect(prob, frame.geometry, self.params)
            gt, dont_care = _words(sample.target)
            m = match_image(gt, dont_care, det.polygons)
            out.append(
                dict(
                    matched=m.matched,
                    n_gt_care=m.n_gt_care,
                    n_det_care=m.n_det_care,
                    n_det=len(det),
                    polygons=[p.ravel().tolist() for p in det.polygons],
                    scores=det.scores.tolist(),
                    det_match=m.det_match.tolist(),
                    det_iou=m.det_iou.tolist(),
                )
            )
        return out

    def failed(self, sample: Any) -> dict[str, Any]:
        n_care = sample.target.n_care if sample.target is not None else 0
        return dict(
            matched=0, n_gt_care=n_care, n_det_care=0, n_det=0,
            polygons=[], scores=[], det_match=[], det_iou=[],
        )  # fmt: skip

    def summarize(self, preds: pd.DataFrame, dataset: Any, idx: np.ndarray) -> dict[str, float]:
        rec = self.records(preds, dataset)
        point = rec.prf(np.arange(len(rec))[None, :])
        boot = rec.prf(idx) if len(rec) else point
        out = {}
        for name, v, b in zip(("text_precision", "text_recall", "hmean"), point, boot, strict=True):
            out[name] = float(v[0])
            out[f"{name}_lo"] = float(np.percentile(b, 2.5))
            out[f"{name}_hi"] = float(np.percentile(b, 97.5))
        return out

    def records(self, preds: pd.DataFrame, dataset: Any) -> TextRecords:
        return TextRecords.from_predictions(preds)

    def value(self, records: TextRecords, idx: np.ndarray) -> np.ndarray:
        return records.prf(idx)[2]

    def n_images(self, records: TextRecords) -> int:
        return len(records)

    def image_scores(self, records: TextRecords) -> np.ndarray:
        return records.image_f()

    def agree(self, a: TextRecords, b: TextRecords) -> np.ndarray:
        return a.same_outcome(b)

    # ------------------------------------------------------------------ the report's view

    def describe(self, row: Any, classes: Any = ()) -> Described:
        scores = [float(s) for s in row["scores"]]
        n = len(scores)
        text = f"{n} word{'s' * (n != 1)}, {int(row['matched'])} of {int(row['n_gt_care'])} matched"
        score = float(np.mean(scores)) if scores else float("nan")
        care = int(row["n_gt_care"])
        return Described(text, score, truth=f"{care} word{'s' * (care != 1)}")

    def draw(self, item: DrawInput) -> list[Panel]:
        """The source image with the ground truth ('###' words marked ignored) and DB's
        polygons with their box scores; then, from the re-run model, the probability map and
        the binarized map DB's contours are read from (step 1, db.py), in model pixels."""
        shapes = []
        gt, dont_care = _words(item.sample.target if item.sample is not None else None)
        for poly, ignored in zip(gt, dont_care, strict=True):
            shapes.append(Shape(poly, True, "###" if ignored else "", bool(ignored)))
        n = 0
        if item.row is not None:
            for flat, score in zip(item.row["polygons"], item.row["scores"], strict=True):
                n += 1
                poly = np.asarray(list(flat), float).reshape(-1, 2)
                shapes.append(Shape(poly, False, f"{score:.2f}"))
        panels: list[Panel] = [Overlay(item.image, tuple(shapes), f"{n} polygon{'s' * (n != 1)}")]
        if item.outputs is not None and "prob_map" in item.outputs:
            prob = np.asarray(item.outputs["prob_map"], dtype=np.float32)
            prob = prob.reshape(prob.shape[-2:])
            panels.append(Heat(prob, "probability map"))
            panels.append(Heat(binarize(prob, self.params), f"binarized > {self.params.thresh}"))
        return panels


TASKS.register("text_detection")(TextDetection())
