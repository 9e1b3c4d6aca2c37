"""The ICDAR 2015 localisation protocol on one image (the Robust Reading Competition's
Challenge 4 script, as PaddleOCR's ppocr/metrics/eval_det_iou.py reimplements it with
shapely; our own code):

- a polygon (ground truth or detection) that is not valid or not simple is skipped, as
  PaddleOCR's evaluator does (the official script's Polygon library scores such a bowtie in
  its own way; none of the 5,230 ICDAR 2015 test words is invalid);
- a detection whose area lies more than AREA_PRECISION (0.5) inside one don't-care ("###")
  word -- intersection / detection area, checked against each don't-care word in turn -- is
  ignored: neither a hit nor a false alarm;
- matching is one-to-one and greedy in file order: for each ground-truth word in order, for
  each detection in order, a pair whose IoU > IOU (0.5) where both are unmatched and neither
  is don't-care is a match. The first qualifying detection wins, not the best one, exactly as
  the script does; a detection covering two words matches only the first;
- per image: matched, n_gt_care (words not '###'), n_det_care (detections not ignored).
  Dataset precision = sum matched / sum n_det_care, recall = sum matched / sum n_gt_care,
  hmean their harmonic mean (0 when a denominator or both rates are 0): per-image records
  summed, so any resample of images is a re-aggregation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IOU = 0.5
AREA_PRECISION = 0.5

# det_match codes for detections that matched no word (a match is the word's index >= 0)
UNMATCHED = -1  # a false alarm (counted in n_det_care)
IGNORED = -2  # mostly inside a don't-care word: not counted
INVALID = -3  # not a valid simple polygon: skipped, as PaddleOCR's evaluator does


@dataclass(frozen=True)
class ImageMatch:
    matched: int
    n_gt_care: int
    n_det_care: int
    det_match: np.ndarray  # int32 per detection: matched word index, or a code above
    det_iou: np.ndarray  # float32 per detection: IoU with its word, else best with a care word

    @property
    def matched_gt(self) -> tuple[int, ...]:
        return tuple(sorted(int(g) for g in self.det_match if g >= 0))


def _polygons(coords: np.ndarray):
    """shapely polygons of (n, k, 2) coordinates, and which are valid and simple (the others
    become None: shapely answers NaN for them instead of a topology error)."""
    import shapely

    polys = shapely.polygons(np.asarray(coords, dtype=np.float64).reshape(len(coords), -1, 2))
    ok = shapely.is_valid(polys) & shapely.is_simple(polys)
    polys[~ok] = None
    return polys, ok


def match_image(gt: np.ndarray, dont_care: np.ndarray, det: np.ndarray) -> ImageMatch:
    """gt (g, k, 2) words, dont_care (g,) bool, det (d, m, 2) detections, all in the same
    (source image) pixels."""
    import shapely

    g, d = len(gt), len(det)
    dont_care = np.asarray(dont_care, dtype=bool).reshape(g)
    det_match = np.full(d, UNMATCHED, np.int32)
    det_iou = np.zeros(d, np.float32)
    gt_polys, gt_ok = _polygons(gt) if g else (np.empty(0, object), np.zeros(0, bool))
    det_polys, det_ok = _polygons(det) if d else (np.empty(0, object), np.zeros(0, bool))
    det_match[~det_ok] = INVALID
    care_gt = gt_ok & ~dont_care
    if g and d:
        inter = shapely.area(shapely.intersection(gt_polys[:, None], det_polys[None, :]))
        inter = np.nan_to_num(inter)
        area_d = np.nan_to_num(shapely.area(det_polys))
        area_g = np.nan_to_num(shapely.area(gt_polys))
        ignore_gt = gt_ok & dont_care
        with np.errstate(invalid="ignore", divide="ignore"):
            inside = np.where(area_d > 0, inter / area_d, 0.0)  # (g, d)
            iou = np.where(inter > 0, inter / (area_g[:, None] + area_d[None, :] - inter), 0.0)
        det_match[det_ok & (inside[ignore_gt] > AREA_PRECISION).any(axis=0)] = IGNORED
        free = det_match == UNMATCHED
        for i in np.flatnonzero(care_gt):
            hits = np.flatnonzero(free & (iou[i] > IOU))
            if len(hits):
                j = hits[0]
                det_match[j], free[j] = i, False
        best = np.where(care_gt[:, None], iou, 0.0).max(axis=0)
        hit = det_match >= 0
        det_iou = np.where(hit, iou[np.maximum(det_match, 0), np.arange(d)], best)
    matched = int((det_match >= 0).sum())
    n_det_care = int(((det_match == UNMATCHED) | (det_match >= 0)).sum())
    return ImageMatch(
        matched, int(care_gt.sum()), n_det_care, det_match, det_iou.astype(np.float32)
    )


def rates(matched, n_gt, n_det) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, hmean (fractions) from summed counts, vectorized, with the
    script's conventions: a rate with a zero denominator is 0, and so is hmean when P + R
    is 0."""
    m, g, d = (np.asarray(v, dtype=np.float64) for v in (matched, n_gt, n_det))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(d > 0, m / d, 0.0)
        r = np.where(g > 0, m / g, 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return p, r, f
