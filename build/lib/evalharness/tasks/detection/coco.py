"""pycocotools, the maintained COCO evaluation, used in two places:

- `match_images`: per image, COCOeval.evaluateImg's matching (greedy by score, crowd
  regions ignored, IoU >= t for the ten thresholds 0.50:0.05:0.95), for the images of one
  batch. evaluateImg looks at one image and one category at a time, so restricting imgIds
  to a batch gives the same records as a full evaluation; only the area range 'all' and
  maxDets 100 are computed, the two summary numbers (mAP, mAP50) need nothing else.
- `coco_stats`: the library's mAP@[.5:.95] and mAP@.5 (stats[0], stats[1]) of a whole config.

Both use class indices as category ids (data/detection.py says why that changes nothing)
and renumber annotation ids per call: YOLO labels number them per image, and COCO indexes
annotations by id.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np

from evalharness.optional import require

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCOeval's iouThrs
N_THRESHOLDS = len(IOU_THRESHOLDS)
ALL_BITS = (1 << N_THRESHOLDS) - 1


def pycocotools():
    """The pycocotools modules, or one line saying how to install them."""
    require("pycocotools", "the detection task", "detection")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return COCO, COCOeval


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        return fn(*args)


def ground_truth(targets, n_classes: int):
    """A COCO object of these targets (image ids as given); returns it and, per new
    annotation id, (position in `targets`, index in that target)."""
    COCO, _ = pycocotools()
    images, anns, where = [], [], {}
    for i, t in enumerate(targets):
        images.append(dict(id=int(t.image_id)))
        for j, a in enumerate(t.annotations()):
            a["id"] = len(anns) + 1
            where[a["id"]] = (i, j)
            anns.append(a)
    gt = COCO()
    gt.dataset = dict(
        images=images,
        annotations=anns,
        categories=[dict(id=k, name=str(k)) for k in range(n_classes)],
    )
    _quiet(gt.createIndex)
    return gt, where


def results(gt, image_ids, dets) -> object:
    """The detections of each image (Detections, source xyxy) as COCO results on `gt`."""
    anns = []
    for image_id, d in zip(image_ids, dets, strict=True):
        b = d.boxes.astype(np.float64)
        for k in range(len(d.scores)):
            x1, y1, x2, y2 = b[k]
            anns.append(
                dict(
                    image_id=int(image_id),
                    category_id=int(d.labels[k]),
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    score=float(d.scores[k]),
                )
            )
    if anns:
        return _quiet(gt.loadRes, anns)
    COCO, _ = pycocotools()
    empty = COCO()
    empty.dataset = dict(images=list(gt.dataset["images"]), annotations=[],
                         categories=list(gt.dataset["categories"]))  # fmt: skip
    _quiet(empty.createIndex)
    return empty


def evaluator(gt, dt, image_ids, cat_ids, only_all: bool):
    _, COCOeval = pycocotools()
    ev = COCOeval(gt, dt, "bbox")
    ev.params.imgIds = list(image_ids)
    ev.params.catIds = list(cat_ids)
    if only_all:
        ev.params.areaRng = ev.params.areaRng[:1]
        ev.params.areaRngLbl = ev.params.areaRngLbl[:1]
    return ev


@dataclass(frozen=True)
class ImageMatches:
    """COCO's verdict on each detection of one image, aligned with its detections.

    tp / ignored: bit t set = true positive / ignored (matched to a crowd region, or beyond
    COCO's 100 per category) at IOU_THRESHOLDS[t]; neither = a false positive there.
    gt_match: index in the image's target of the object matched at IoU 0.5, or -1.
    """

    tp: np.ndarray  # int16
    ignored: np.ndarray  # int16
    gt_match: np.ndarray  # int32


def match_images(targets, dets, n_classes: int) -> list[ImageMatches]:
    """evaluateImg's records for the images of one batch (targets and detections aligned)."""
    gt, where = ground_truth(targets, n_classes)
    ids = [int(t.image_id) for t in targets]
    out = [
        ImageMatches(
            np.zeros(len(d.scores), np.int16),
            np.full(len(d.scores), ALL_BITS, np.int16),  # not in COCO's records: ignored
            np.full(len(d.scores), -1, np.int32),
        )
        for d in dets
    ]
    cats = {int(c) for t in targets for c in t.labels} | {int(c) for d in dets for c in d.labels}
    if not cats or not any(len(d.scores) for d in dets):
        return out
    dt = results(gt, ids, dets)
    ev = evaluator(gt, dt, ids, sorted(cats), only_all=True)
    _quiet(ev.evaluate)
    # loadRes numbers the detections 1.. in the order given: image by image, by score.
    owner = [(i, k) for i, d in enumerate(dets) for k in range(len(d.scores))]
    for rec in ev.evalImgs:
        if rec is None:
            continue
        for col, det_id in enumerate(rec["dtIds"]):
            i, k = owner[det_id - 1]
            m = rec["dtMatches"][:, col] > 0
            ig = rec["dtIgnore"][:, col].astype(bool)
            out[i].tp[k] = _bits(m & ~ig)
            out[i].ignored[k] = _bits(ig)
            gt_id = int(rec["dtMatches"][0, col])
            out[i].gt_match[k] = where[gt_id][1] if gt_id else -1
    return out


def _bits(flags: np.ndarray) -> int:
    return int(np.sum(flags.astype(np.int64) << np.arange(len(flags))))


def coco_stats(targets, dets, n_classes: int) -> tuple[float, float]:
    """pycocotools' mAP@[.5:.95] and mAP@.5 (fractions) over all these images."""
    gt, _ = ground_truth(targets, n_classes)
    ids = [int(t.image_id) for t in targets]
    ev = evaluator(gt, results(gt, ids, dets), ids, range(n_classes), only_all=False)
    for step in (ev.evaluate, ev.accumulate, ev.summarize):
        _quiet(step)
    return float(ev.stats[0]), float(ev.stats[1])
