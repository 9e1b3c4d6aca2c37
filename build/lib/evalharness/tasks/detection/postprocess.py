"""After the head: score threshold, per-class NMS, the per-image cap, back to source pixels.

The settings come from the model config (`postprocess:`), because they belong to the model
as much as its weights do: YOLOX is evaluated with score >= 0.01, per-class NMS at IoU 0.65
and the best class of each anchor point (YOLOX's own `postprocess`); the per-image cap of
100 is COCO's maxDets. `multi_label: true` keeps every class above the threshold instead
(NanoDet's and mmdet's evaluation do).

Boxes leave through `Frame.geometry.boxes_to_source` and nothing else: the geometry is
the one the resize stage recorded for that very sample, so a letterbox offset, a squash's
two scales or a swapped width/height are undone exactly, whatever the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from evalharness.preprocess.geometry import Geometry
from evalharness.registry import unknown_choice_message
from evalharness.tasks.detection.heads import HEADS


@dataclass(frozen=True)
class PostSettings:
    head: str = ""
    strides: tuple[int, ...] = (8, 16, 32)
    score_thr: float = 0.01
    nms_iou: float = 0.65
    max_det: int = 100
    multi_label: bool = False
    reg_max: int = 7  # nanodet: distance bins per side minus one

    @classmethod
    def from_pairs(cls, model_name: str, pairs: tuple[tuple[str, object], ...]) -> PostSettings:
        valid = [f.name for f in fields(cls)]
        values = {}
        for key, value in pairs:
            if key not in valid:
                msg = unknown_choice_message("postprocess setting", key, valid)
                raise ValueError(f"model '{model_name}': {msg}")
            values[key] = value
        if not values.get("head"):
            raise ValueError(
                f"model '{model_name}' is a detection model without postprocess.head "
                f"(one of {', '.join(HEADS.names())})"
            )
        HEADS.get(str(values["head"]))
        s = cls(**values)
        object.__setattr__(s, "strides", tuple(int(v) for v in np.atleast_1d(s.strides)))
        if not 0 <= float(s.score_thr) < 1 or not 0 < float(s.nms_iou) <= 1:
            raise ValueError(
                f"model '{model_name}': score_thr must be in [0, 1), nms_iou in (0, 1]"
            )
        if int(s.max_det) < 1:
            raise ValueError(f"model '{model_name}': max_det must be at least 1")
        return s


@dataclass(frozen=True)
class Detections:
    """One image's detections, source pixels, by descending score (ties: NMS order)."""

    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (n,) float32
    labels: np.ndarray  # (n,) int64 class index

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def select(boxes: np.ndarray, scores: np.ndarray, s: PostSettings) -> tuple[np.ndarray, ...]:
    """(A, 4) boxes and (A, C) scores of one image -> kept boxes, scores, labels (model px)."""
    if s.multi_label:
        anchor, label = np.nonzero(scores >= s.score_thr)
        score = scores[anchor, label]
    else:
        label = scores.argmax(axis=1)
        score = scores[np.arange(len(scores)), label]
        anchor = np.nonzero(score >= s.score_thr)[0]
        label, score = label[anchor], score[anchor]
    import torch  # torchvision's NMS: loaded when the first detections are post-processed
    from torchvision.ops import batched_nms

    b = boxes[anchor]
    keep = batched_nms(
        torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(score, dtype=np.float32)),
        torch.from_numpy(label.astype(np.int64)),
        float(s.nms_iou),
    ).numpy()[: int(s.max_det)]
    return b[keep], score[keep], label[keep]


def to_source(boxes: np.ndarray, scores, labels, geometry: Geometry) -> Detections:
    """Model-pixel boxes -> source pixels through the sample's own geometry, stored as
    float32 (what the store keeps is exactly what is scored), by descending score."""
    src = geometry.boxes_to_source(boxes).astype(np.float32)
    order = np.argsort(-np.asarray(scores, np.float32), kind="stable")
    return Detections(
        src[order].reshape(-1, 4),
        np.asarray(scores, np.float32)[order],
        np.asarray(labels, np.int64)[order],
    )
