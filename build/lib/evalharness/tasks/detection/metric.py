"""COCO's accumulation in numpy, on per-image match records, for any resample of images.

COCOeval.accumulate, per category: concatenate every image's detections (image order, then
score order within an image), stable-sort on -score, cumulate true and false positives per
IoU threshold (ignored detections count as neither), precision = tp / (tp + fp + eps),
made non-increasing from the right, read at the first position whose recall tp / npig
reaches each of the 101 recall thresholds (0 beyond the last detection); categories with no
counted ground truth (npig = 0) are left out of the mean.

A resample draws images with repetition. Here every detection keeps one fixed place (the
order of the whole set) and each image carries a weight, its number of draws: the
cumulative sums add the weight where COCO would add one per copy. That is COCOeval on the
drawn images, each draw its own image, numbered in the set's order: a copy of a true
positive only adds points rising towards the copies' last one; a copy of a false
positive only adds points below the one before it; a detection with weight 0, or
ignored, adds a point equal to the previous one: none of them can be the maximum read at
a recall threshold. The one difference: where one image holds equal scores in one class,
COCO would interleave the copies (a, b, a, b) and the weights take them in blocks (a, a,
b, b); that changes resamples only, never the point estimate. At the identity resample
(every weight 1) this is COCOeval.accumulate step for step; tests hold it to pycocotools'
stats[0] and stats[1] within 1e-9, and resamples to COCOeval on the drawn images.

Per class, per IoU threshold, every resample at once: the running sums are (resamples x
true positives) arrays, and each true positive adds its interpolated precision once for
every recall threshold its recall reaches first (metric cost ~ resamples x true positives).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalharness.tasks.detection.coco import N_THRESHOLDS

RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)  # COCOeval's recThrs
EPS = np.spacing(1)
BLOCK_ELEMENTS = 2_000_000  # resamples x detections of a class per block (memory bound)


@dataclass
class Accumulation:
    """One config's detections in COCO's accumulation order, and its ground-truth counts."""

    n_images: int
    image: np.ndarray  # (D,) image position of each detection, sorted (class, -score, image)
    tp: np.ndarray  # (D, T) bool
    fp: np.ndarray  # (D, T) bool
    start: np.ndarray  # (K + 1,) detections of class k are [start[k], start[k + 1])
    gt_count: np.ndarray  # (n, K) counted (non-crowd) objects per image and class


def _unbits(bits: np.ndarray) -> np.ndarray:
    return ((bits.astype(np.int64)[:, None] >> np.arange(N_THRESHOLDS)) & 1).astype(bool)


def accumulation(
    image: np.ndarray,
    position: np.ndarray,
    score: np.ndarray,
    label: np.ndarray,
    tp_bits: np.ndarray,
    ignored_bits: np.ndarray,
    gt_count: np.ndarray,
) -> Accumulation:
    """Flat per-detection arrays (any order) -> COCO's order: class, then -score, then image
    position, then place within the image (evaluateImg's stable score order)."""
    n, k = gt_count.shape
    k = max(k, int(label.max()) + 1 if len(label) else 0)
    counts = np.zeros((n, k), np.int64)
    counts[:, : gt_count.shape[1]] = gt_count
    order = np.lexsort((position, image, -score.astype(np.float64), label))
    tp, ig = _unbits(tp_bits[order]), _unbits(ignored_bits[order])
    label = label[order]
    # After a class's last true positive (at any IoU) the cumulative tp stays flat and the
    # precision only falls: no recall threshold is read there, for any resample. Dropping
    # that tail (mostly the low-score false positives of a 0.01 threshold) changes nothing.
    keep = np.ones(len(label), bool)
    any_tp = tp.any(axis=1)
    bounds = np.searchsorted(label, np.arange(k + 1), side="left")
    for c in range(k):
        hits = np.nonzero(any_tp[bounds[c] : bounds[c + 1]])[0]
        last = bounds[c] + (hits[-1] + 1 if len(hits) else 0)
        keep[last : bounds[c + 1]] = False
    label = label[keep]
    start = np.searchsorted(label, np.arange(k + 1), side="left")
    return Accumulation(n, image[order][keep], tp[keep], (~tp & ~ig)[keep], start, counts)


def resample_weights(idx: np.ndarray, n: int) -> np.ndarray:
    """(B, n) image indices -> (B, n) number of times each image is drawn."""
    b = idx.shape[0]
    flat = (idx + n * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def _class_precision(w: np.ndarray, tp: np.ndarray, fp: np.ndarray, npig: np.ndarray):
    """Mean interpolated precision over the recall thresholds: (B, T) for one class.

    w: (B, D) weight of each detection's image; tp, fp: (D, T); npig: (B,) > 0.

    Only true-positive places matter: the first place whose recall reaches a threshold is
    one, and every other place has a precision no higher than the true positive before it
    (or 0), so the running maximum from the right over the true positives equals COCO's
    over all places. A true positive serves the thresholds its recall reaches and the one
    before it did not.
    """
    out = np.zeros((w.shape[0], tp.shape[1]))
    n_thr = len(RECALL_THRESHOLDS)
    for t in range(tp.shape[1]):
        at = np.nonzero(tp[:, t])[0]
        if len(at) == 0:
            continue
        tpc = np.cumsum(w[:, at], axis=1)  # (B, P) whole numbers
        fpc = np.cumsum(w * fp[:, t], axis=1)[:, at]
        pr = tpc / (fpc + tpc + EPS)
        interp = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
        rc = tpc / npig[:, None]  # COCO's recall, the same division
        reached = np.searchsorted(RECALL_THRESHOLDS, rc.ravel(), side="right").reshape(rc.shape)
        served = np.diff(reached, axis=1, prepend=0)
        out[:, t] = (interp * served).sum(axis=1) / n_thr
    return out


def ap_per_threshold(acc: Accumulation, idx: np.ndarray) -> np.ndarray:
    """(B, n) resampled image indices -> (B, T) AP at each IoU threshold (fractions)."""
    weights = resample_weights(np.asarray(idx), acc.n_images)
    npig = weights @ acc.gt_count  # (B, K)
    total = np.zeros((len(weights), N_THRESHOLDS))
    for k in np.nonzero(acc.gt_count.sum(axis=0) > 0)[0]:
        s, e = acc.start[k], acc.start[k + 1]
        rows = np.nonzero(npig[:, k] > 0)[0]
        step = max(1, BLOCK_ELEMENTS // max(1, e - s))
        for r0 in range(0, len(rows), step):
            r = rows[r0 : r0 + step]
            w = weights[np.ix_(r, acc.image[s:e])]
            total[r] += _class_precision(w, acc.tp[s:e], acc.fp[s:e], npig[r, k])
    n_valid = (npig > 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_valid[:, None] > 0, total / n_valid[:, None], np.nan)
