"""Object detection: head decode + NMS, boxes back to the image, COCO mAP with intervals.

Metric columns (points, 0..100, as detection papers report COCO: "25.8 mAP"; accuracy in
this tool is in percent too): `mAP` (COCO mAP@[.50:.95], area all, 100 detections) and
`mAP50` (mAP@.50), each with `_lo`/`_hi`, a 95% percentile bootstrap over images. The
point estimate is pycocotools' stats[0] / stats[1] on the whole config; the resamples
re-accumulate the stored match records (metric.py), equal to it at the identity resample.

Prediction columns, one row per image (lists aligned per detection, by descending score):
  boxes     x1, y1, x2, y2 in source-image pixels (float32), mapped back through the
            sample's own Geometry;
  scores    float32; labels: class index (the dataset's categories in ascending id order);
  tp        int16 bit mask: bit t = a true positive at IoU 0.50 + 0.05 t (COCO's matching);
  ignored   int16 bit mask: bit t = ignored at that IoU (matched to a crowd region);
            a detection with neither bit is a false positive at that IoU;
  gt_match  index (in the image's annotations) of the object matched at IoU 0.5, or -1;
  gt_labels, gt_crowd  the image's annotations (class, crowd flag): the ground-truth counts
            of the accumulation, so a resample needs nothing but these rows.
The match records are computed in `predict`, by pycocotools' own per-image evaluation on
the batch (coco.py), so the store is self-contained: intervals, paired tests and Shapley
coalitions of any run dir (merged shards included) are re-aggregations without the dataset.

Per-image score for paired sign tests (`image_scores`): the image's F1 at IoU 0.5 over the
detections with score >= 0.3: 2 TP / (2 TP + FP + FN), TP = detections matched to a
counted object, FP = unmatched ones (crowd matches count as neither), FN = counted
objects left unmatched; 1 when the image has neither objects nor such detections.

Agreement (`agree`, the summary's agree_ref): an image agrees with the reference when the
detections with score >= 0.3 match the same set of ground-truth objects at IoU 0.5 (an
object matched in one config and missed in the other, or matched with another class,
is a disagreement) and leave the same number of unmatched detections. COCO matches
greedily by descending score, so the matches of detections above 0.3 do not depend on the
detections below it: the definition reads the stored records as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from evalharness.preprocess.geometry import Frame
from evalharness.stats.map_interval import (
    debiased_interval,
    half_sample_indices,
    measured_coverage,
    objects_per_class,
)
from evalharness.tasks.base import TASKS, Task
from evalharness.tasks.detection import coco
from evalharness.tasks.detection.heads import HEADS
from evalharness.tasks.detection.metric import Accumulation, accumulation, ap_per_threshold
from evalharness.tasks.detection.postprocess import Detections, PostSettings, select, to_source
from evalharness.tasks.drawing import Described, DrawInput, Overlay, Panel, Shape

if TYPE_CHECKING:  # pandas loads when a table is read, not when a task registers
    import pandas as pd

AGREE_SCORE = 0.3  # detections that count for agree() and image_scores()
LEVEL = 0.95


@dataclass
class DetRecords:
    acc: Accumulation
    f1: np.ndarray  # (n,) per-image F1 at IoU 0.5, score >= AGREE_SCORE
    matched: list[tuple[int, ...]]  # per image: objects matched by those detections
    unmatched: np.ndarray  # (n,) false positives among them


class Detection(Task):
    name = "detection"
    roles = ("raw",)
    metric = "mAP"
    # mAP_coverage: how often the interval covered the population's mAP in simulation at
    # this set's objects per class (stats/map_interval.py): 0.95 where it is calibrated
    metric_columns = (
        "mAP", "mAP_lo", "mAP_hi", "mAP50", "mAP50_lo", "mAP50_hi", "mAP_coverage",
    )  # fmt: skip
    unit = "mAP points"
    number_format = "{:+.2f}"
    flip_names = ("images_worse", "images_better")  # per-image F1 (image_scores) fell / rose
    task_schema = [
        ("boxes", pa.list_(pa.list_(pa.float32(), 4))),
        ("scores", pa.list_(pa.float32())),
        ("labels", pa.list_(pa.int32())),
        ("tp", pa.list_(pa.int16())),
        ("ignored", pa.list_(pa.int16())),
        ("gt_match", pa.list_(pa.int32())),
        ("gt_labels", pa.list_(pa.int32())),
        ("gt_crowd", pa.list_(pa.bool_())),
    ]

    def __init__(self, settings: PostSettings | None = None, n_classes: int = 0) -> None:
        self.settings = settings
        self.n_classes = n_classes  # the dataset's, set by check_dataset
        if settings is not None:
            self.roles = HEADS.get(settings.head).roles(settings.strides)

    # ------------------------------------------------------------------ binding, checks

    def for_model(self, model: Any) -> Detection:
        return Detection(PostSettings.from_pairs(model.name, model.postprocess))

    def check_dataset(self, dataset: Any, model: Any) -> None:
        coco.pycocotools()
        if dataset.task != self.name:
            return  # app.prepare names the task mismatch
        n = len(dataset.classes)
        if model.num_classes is not None and model.num_classes != n:
            raise ValueError(
                f"model '{model.name}' has {model.num_classes} classes, dataset "
                f"'{dataset.name}' has {n}"
            )
        self.n_classes = n

    def check_outputs(self, outputs: dict[str, np.ndarray], model: Any, dataset: Any) -> None:
        s = self._settings()
        out = self.read_outputs(outputs, model)
        head = HEADS.get(s.head)
        c = head.n_classes(out, s)
        if c != len(dataset.classes):
            raise ValueError(
                f"model '{model.name}' ({s.head} head) scores {c} classes, dataset "
                f"'{dataset.name}' has {len(dataset.classes)}"
            )
        if model.input_hw is not None:
            head.decode({k: v[:1] for k, v in out.items()}, model.input_hw, s)

    def _settings(self) -> PostSettings:
        if self.settings is None:
            raise ValueError("the detection task needs a model's postprocess settings")
        return self.settings

    # ------------------------------------------------------------------ predictions

    def predict(
        self, outputs: dict[str, np.ndarray], frames: list[Frame], samples: list[Any]
    ) -> list[dict[str, Any]]:
        s = self._settings()
        # The model input's size is the geometry's output size (the batch shares one shape).
        cand = HEADS.get(s.head).decode(outputs, frames[0].geometry.out_hw, s)
        dets: list[Detections | None] = []
        for j, frame in enumerate(frames):
            boxes, scores = cand.boxes[j], cand.scores[j]
            if not (np.isfinite(scores).all() and np.isfinite(boxes).all()):
                dets.append(None)
                continue
            dets.append(to_source(*select(boxes, scores, s), frame.geometry))
        ok = [j for j, d in enumerate(dets) if d is not None]
        n_classes = self._classes_seen(samples, dets)
        matches = coco.match_images(
            [samples[j].target for j in ok], [dets[j] for j in ok], n_classes
        )
        out = []
        for j, sample in enumerate(samples):
            if dets[j] is None:
                rec = self.failed(sample)
                rec.update(error_stage="infer", error="non-finite model output")
                out.append(rec)
                continue
            out.append(self._row(sample, dets[j], matches[ok.index(j)]))
        return out

    def _classes_seen(self, samples, dets) -> int:
        seen = [self.n_classes]
        seen += [max(s.target.labels, default=-1) + 1 for s in samples]
        seen += [int(d.labels.max()) + 1 for d in dets if d is not None and len(d.labels)]
        return max(seen)

    @staticmethod
    def _row(sample: Any, d: Detections, m: coco.ImageMatches) -> dict[str, Any]:
        t = sample.target
        return dict(
            boxes=d.boxes.tolist(),
            scores=d.scores.tolist(),
            labels=d.labels.tolist(),
            tp=m.tp.tolist(),
            ignored=m.ignored.tolist(),
            gt_match=m.gt_match.tolist(),
            gt_labels=list(t.labels),
            gt_crowd=list(t.iscrowd),
        )

    def failed(self, sample: Any) -> dict[str, Any]:
        """No detections: every counted object of the image is a miss."""
        t = sample.target
        labels = list(t.labels) if t is not None else []
        crowd = list(t.iscrowd) if t is not None else []
        return dict(boxes=[], scores=[], labels=[], tp=[], ignored=[], gt_match=[],
                    gt_labels=labels, gt_crowd=crowd)  # fmt: skip

    # ------------------------------------------------------------------ statistics

    def summarize(self, preds: pd.DataFrame, dataset: Any, idx: np.ndarray) -> dict[str, float]:
        rec = self.records(preds, dataset)
        ap = ap_per_threshold(rec.acc, idx) * 100
        if dataset is not None:
            point = np.asarray(self.library_stats(preds, dataset)) * 100
        else:  # a merge without the dataset: the records' identity resample (equal to 1e-9)
            ident = ap_per_threshold(rec.acc, np.arange(rec.acc.n_images)[None])[0] * 100
            point = np.array([ident.mean(), ident[0]])
        # Sample mAP is biased upward on small sets (AP's interpolated precision takes a
        # maximum): the interval is the bias-corrected one (stats/map_interval.py, coverage
        # measured there), read off the same resamples plus metric on half-samples.
        n = rec.acc.n_images
        halves = ap_per_threshold(rec.acc, half_sample_indices(n)) * 100
        out = {}
        for name, v, boot, half in (
            ("mAP", point[0], ap.mean(axis=1), halves.mean(axis=1)),
            ("mAP50", point[1], ap[:, 0], halves[:, 0]),
        ):
            iv = debiased_interval(float(v), boot, half, n, LEVEL)
            out.update({name: float(v), f"{name}_lo": iv.lo, f"{name}_hi": iv.hi})
        per_class = objects_per_class(rec.acc.gt_count.sum(axis=0))
        out["mAP_coverage"] = measured_coverage(per_class)
        return out

    def library_stats(self, preds: pd.DataFrame, dataset: Any) -> tuple[float, float]:
        """pycocotools' (stats[0], stats[1]) of one config's rows, ground truth from the
        dataset, detections as stored (fractions)."""
        by_index = {s.index: s for s in dataset.samples}
        targets = [by_index[int(i)].target for i in preds.sample_index]
        dets = [stored_detections(r) for r in preds.itertuples(index=False)]
        return coco.coco_stats(targets, dets, len(dataset.classes))

    def records(self, preds: pd.DataFrame, dataset: Any) -> DetRecords:
        n = len(preds)
        lens = preds.scores.map(len).to_numpy()
        image = np.repeat(np.arange(n), lens)
        position = np.concatenate([np.arange(k) for k in lens]) if n else np.zeros(0, int)
        flat = {c: _flat(preds[c], dt) for c, dt in (("scores", np.float32),
                ("labels", np.int64), ("tp", np.int64), ("ignored", np.int64),
                ("gt_match", np.int64))}  # fmt: skip
        gl = _flat(preds.gt_labels, np.int64)
        gc = _flat(preds.gt_crowd, bool)
        gimg = np.repeat(np.arange(n), preds.gt_labels.map(len).to_numpy())
        k = max(int(gl.max()) + 1 if len(gl) else 0, self.n_classes)
        counts = np.zeros((n, k), np.int64)
        np.add.at(counts, (gimg[~gc], gl[~gc]), 1)
        acc = accumulation(image, position, flat["scores"], flat["labels"], flat["tp"],
                           flat["ignored"], counts)  # fmt: skip
        strong = flat["scores"] >= AGREE_SCORE
        hit = strong & (flat["tp"] & 1).astype(bool)
        miss = strong & ~hit & ~(flat["ignored"] & 1).astype(bool)
        tp = np.bincount(image[hit], minlength=n)
        fp = np.bincount(image[miss], minlength=n)
        fn = counts.sum(axis=1) - tp
        denom = 2 * tp + fp + fn
        f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)
        per_image = np.split(flat["gt_match"][hit], np.cumsum(tp)[:-1]) if n else []
        matched = [tuple(sorted(m.tolist())) for m in per_image]
        return DetRecords(acc, f1, matched, fp)

    def value(self, records: DetRecords, idx: np.ndarray) -> np.ndarray:
        return ap_per_threshold(records.acc, idx).mean(axis=1) * 100

    def n_images(self, records: DetRecords) -> int:
        return records.acc.n_images

    def image_scores(self, records: DetRecords) -> np.ndarray:
        return records.f1

    def agree(self, a: DetRecords, b: DetRecords) -> np.ndarray:
        same = np.array([x == y for x, y in zip(a.matched, b.matched, strict=True)], bool)
        return same & (a.unmatched == b.unmatched)

    # ------------------------------------------------------------------ the report's view

    def describe(self, row: Any, classes: Any = ()) -> Described:
        """The detections agree() counts (score >= 0.3), best first, at most three named."""
        kept = [(float(s), int(c)) for s, c in zip(row["scores"], row["labels"], strict=True)
                if s >= AGREE_SCORE]  # fmt: skip
        names = [f"{classes[c] if 0 <= c < len(classes) else c} {s:.2f}" for s, c in kept[:3]]
        more = ", ..." if len(kept) > 3 else ""
        count = f"{len(kept)} box{'es' * (len(kept) != 1)}"
        text = count + (": " + ", ".join(names) + more if names else "")
        held = sorted({int(c) for c in row["gt_labels"]})
        truth = ", ".join(str(classes[c]) if 0 <= c < len(classes) else str(c) for c in held)
        return Described(text, max((s for s, _ in kept), default=float("nan")), truth=truth)

    def draw(self, item: DrawInput) -> list[Panel]:
        """The source image with the ground truth and the detections agree() counts (score
        >= 0.3, mapped back to the image's pixels), each labelled with class and score."""
        shapes = []
        t = item.sample.target if item.sample is not None else None
        if t is not None:
            for (x, y, w, h), c, crowd in zip(t.bbox, t.labels, t.iscrowd, strict=True):
                corners = np.array([[x, y], [x + w, y + h]], float)
                shapes.append(Shape(corners, True, item.class_name(c), bool(crowd), box=True))
        n = 0
        if item.row is not None:
            for b, s, c in zip(item.row["boxes"], item.row["scores"], item.row["labels"],
                               strict=True):  # fmt: skip
                if s < AGREE_SCORE:
                    continue
                n += 1
                corners = np.asarray(list(b), float).reshape(2, 2)
                shapes.append(Shape(corners, False, f"{item.class_name(c)} {s:.2f}", box=True))
        return [Overlay(item.image, tuple(shapes), f"{n} box{'es' * (n != 1)} >= {AGREE_SCORE}")]


def _flat(col: pd.Series, dtype) -> np.ndarray:
    parts = [np.asarray(v, dtype=dtype) for v in col]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def stored_detections(row: Any) -> Detections:
    """A prediction row's detections as the store keeps them."""
    boxes = np.asarray([list(b) for b in row.boxes], np.float32).reshape(-1, 4)
    return Detections(boxes, np.asarray(row.scores, np.float32), np.asarray(row.labels, np.int64))


TASKS.register("detection")(Detection())
