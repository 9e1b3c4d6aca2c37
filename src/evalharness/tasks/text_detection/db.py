"""DB (Differentiable Binarization) post-processing: a text probability map -> quadrilaterals.

Our own code, step for step the algorithm of PaddleOCR's DBPostProcess as rapidocr ships it
(rapidocr_onnxruntime/ch_ppocr_det/utils.py; tests/test_text_detection.py checks that both
give the same boxes on real maps). Not a call into rapidocr, because there the boxes leave
`boxes_from_bitmap` already scaled to the source image by a private ratio (map size over
image size): here the DB step knows nothing of the source image. It returns `MapBoxes`, in
the probability map's pixels, and the only way to source pixels is `to_source(boxes,
geometry)`, through the Geometry the sample's pixels went through (preprocess/geometry.py).
So a crop, a pad or a swapped width/height is undone exactly, and boxes that were never
mapped back cannot reach the metric unnoticed: the metric takes `Detections`.

Steps (settings in the model config's `postprocess`, PP-OCR det values by default):
1. binarize: prob > thresh; 2x2 dilation if use_dilation;
2. contours of the binary map (at most max_candidates), each -> its minimum-area rectangle;
   short side < min_size: dropped;
3. box score: mean probability inside the rectangle (score_mode fast) or the contour (slow);
   score < box_thresh: dropped;
4. unclip: grow the rectangle by area * unclip_ratio / perimeter (the shrunk text kernel the
   model predicts -> the whole word), take its minimum-area rectangle again; short side <
   min_size + 2: dropped;
5. (to_source) map to source pixels through the Geometry; then PaddleOCR's output step:
   round to whole pixels, order the corners clockwise from the top-left, clip to the image
   (0..w-1, 0..h-1), drop boxes with a side of 3 px or less.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from evalharness.preprocess.geometry import Geometry

SCORE_MODES = ("fast", "slow")


@dataclass(frozen=True)
class DBParams:
    thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_ratio: float = 1.6
    use_dilation: bool = True
    max_candidates: int = 1000
    min_size: int = 3
    score_mode: str = "fast"

    def __post_init__(self) -> None:
        if self.score_mode not in SCORE_MODES:
            raise ValueError(f"postprocess.score_mode must be one of {SCORE_MODES}")
        if not 0 <= self.thresh < 1 or not 0 <= self.box_thresh <= 1:
            raise ValueError("postprocess.thresh and box_thresh must be probabilities")
        if self.unclip_ratio <= 0 or self.max_candidates < 1 or self.min_size < 0:
            raise ValueError("postprocess: unclip_ratio, max_candidates must be positive")

    @classmethod
    def from_settings(cls, settings: dict[str, Any], model_name: str = "") -> DBParams:
        """From a model config's `postprocess` mapping; an unknown key is named."""
        names = [f.name for f in fields(cls)]
        unknown = [k for k in settings if k not in names]
        if unknown:
            raise ValueError(
                f"model '{model_name}': unknown DB post-processing setting(s) {unknown}; "
                f"valid: {names}"
            )
        types = {f.name: f.type for f in fields(cls)}
        cast = {"float": float, "int": int, "bool": bool, "str": str}
        return cls(**{k: cast[types[k]](v) for k, v in settings.items()})


@dataclass(frozen=True)
class MapBoxes:
    """Boxes in the probability map's pixels (n, 4, 2) as x, y; not yet in the image's."""

    points: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class Detections:
    """Polygons in source-image pixels (n, 4, 2), clockwise from the top-left, and scores."""

    polygons: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.polygons)


def min_area_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """The minimum-area rectangle's corners, ordered as PaddleOCR's get_mini_boxes orders
    them (left pair by y, right pair by y), and its short side."""
    rect = cv2.minAreaRect(contour)
    pts = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    left = (pts[0], pts[1]) if pts[1][1] > pts[0][1] else (pts[1], pts[0])
    right = (pts[2], pts[3]) if pts[3][1] > pts[2][1] else (pts[3], pts[2])
    box = np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)
    return box, min(rect[1])


def score_in_polygon(prob: np.ndarray, poly: np.ndarray) -> float:
    """Mean probability inside a polygon (vertices truncated to whole pixels, as
    cv2.fillPoly gets them), over its bounding rectangle clipped to the map."""
    h, w = prob.shape
    xmin = int(np.clip(np.floor(poly[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(poly[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(poly[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(poly[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    shifted = poly - np.array([xmin, ymin], dtype=poly.dtype)
    cv2.fillPoly(mask, shifted.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(prob[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def unclip(box: np.ndarray, ratio: float) -> np.ndarray:
    """Offset the box outwards by area * ratio / perimeter (rounded joins), as DB trains
    its shrunk text kernels; returns the offset outline's points (m, 1, 2)."""
    import pyclipper
    from shapely.geometry import Polygon

    poly = Polygon(box)
    distance = poly.area * ratio / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return np.array(offset.Execute(distance)).reshape((-1, 1, 2))


def binarize(prob: np.ndarray, p: DBParams) -> np.ndarray:
    """Step 1: the (H, W) 0/1 uint8 map whose contours become boxes (the report draws it)."""
    bitmap = (np.asarray(prob, dtype=np.float32) > p.thresh).astype(np.uint8)
    if p.use_dilation:
        bitmap = cv2.dilate(bitmap, np.ones((2, 2), np.uint8))
    return bitmap


def boxes_from_map(prob: np.ndarray, p: DBParams) -> MapBoxes:
    """Steps 1-4 on one (H, W) probability map."""
    prob = np.asarray(prob, dtype=np.float32)
    bitmap = binarize(prob, p)
    contours, _ = cv2.findContours(bitmap * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes, scores = [], []
    for contour in contours[: p.max_candidates]:
        points, short = min_area_box(contour)
        if short < p.min_size:
            continue
        region = points if p.score_mode == "fast" else contour.reshape(-1, 2)
        score = score_in_polygon(prob, region)
        if score < p.box_thresh:
            continue
        box, short = min_area_box(unclip(points, p.unclip_ratio))
        if short < p.min_size + 2:
            continue
        boxes.append(box)
        scores.append(score)
    pts = np.array(boxes, dtype=np.float32).reshape(-1, 4, 2)
    return MapBoxes(pts, np.array(scores, dtype=np.float64))


def order_clockwise(box: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left (image y down), as PaddleOCR orders its
    output: the two leftmost points by y, then the two rightmost by y."""
    by_x = box[np.argsort(box[:, 0]), :]
    left = by_x[:2][np.argsort(by_x[:2, 1]), :]
    right = by_x[2:][np.argsort(by_x[2:, 1]), :]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def to_source(boxes: MapBoxes, geometry: Geometry) -> Detections:
    """Step 5: the map's boxes in source-image pixels, through the sample's Geometry, then
    PaddleOCR's integer output (round, order, clip to the last pixel, drop thin boxes)."""
    h, w = geometry.src_hw
    src = np.round(geometry.polygons_to_source(boxes.points, clip=True))
    polys, scores = [], []
    for box, score in zip(src, boxes.scores, strict=True):
        box = order_clockwise(box)
        box[:, 0] = np.clip(np.trunc(box[:, 0]), 0, w - 1)
        box[:, 1] = np.clip(np.trunc(box[:, 1]), 0, h - 1)
        if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
            continue
        polys.append(box)
        scores.append(score)
    return Detections(
        np.array(polys, dtype=np.float32).reshape(-1, 4, 2), np.array(scores, dtype=np.float64)
    )


def detect(prob: np.ndarray, geometry: Geometry, p: DBParams) -> Detections:
    """One sample's probability map -> detections in its source image. A map smaller than
    the model input (a strided head) is one more resize in the geometry."""
    prob = np.asarray(prob)
    geom = geometry if prob.shape == geometry.out_hw else geometry.then_resize(prob.shape)
    return to_source(boxes_from_map(prob, p), geom)
