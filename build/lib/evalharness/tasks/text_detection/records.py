"""Per-image text-detection records and the numbers computed from them.

A config's records are three count vectors over the images (matched, n_gt_care,
n_det_care) plus, for agreement, each image's set of matched words and its number of false
alarms. Precision, recall and hmean of any resample of images are sums of the counts: the
bootstrap and Shapley coalitions re-aggregate, they never re-run the model or the matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from evalharness.tasks.text_detection.protocol import rates

if TYPE_CHECKING:  # pandas loads when a table is read, not when a task registers
    import pandas as pd

POINTS = 100.0  # summary columns are in points (percent), as top1 and agree_ref are


@dataclass
class TextRecords:
    matched: np.ndarray  # int per image
    n_gt_care: np.ndarray
    n_det_care: np.ndarray
    matched_gt: list[tuple[int, ...]]  # the matched words' indices in the ground-truth file

    @classmethod
    def from_predictions(cls, preds: pd.DataFrame) -> TextRecords:
        matched_gt = [
            tuple(sorted(int(g) for g in (dm if dm is not None else ()) if g >= 0))
            for dm in preds.det_match
        ]
        return cls(
            preds.matched.to_numpy(dtype=np.int64),
            preds.n_gt_care.to_numpy(dtype=np.int64),
            preds.n_det_care.to_numpy(dtype=np.int64),
            matched_gt,
        )

    def __len__(self) -> int:
        return len(self.matched)

    @property
    def false_alarms(self) -> np.ndarray:
        return self.n_det_care - self.matched

    def sums(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Summed counts over each resample; idx is (b, n) image indices."""
        return (
            self.matched[idx].sum(axis=-1),
            self.n_gt_care[idx].sum(axis=-1),
            self.n_det_care[idx].sum(axis=-1),
        )

    def prf(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Precision, recall, hmean in points on each resample."""
        p, r, f = rates(*self.sums(idx))
        return p * POINTS, r * POINTS, f * POINTS

    def image_f(self) -> np.ndarray:
        """Per-image F = 2 matched / (n_gt_care + n_det_care) (the harmonic mean of the
        image's precision and recall), a fraction; 1 for an image with no care word and no
        counted detection (nothing to find, nothing wrong), 0 for one with only false alarms
        or only misses -- the script's per-sample hmean in every case."""
        total = self.n_gt_care + self.n_det_care
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, 2 * self.matched / total, 1.0)

    def same_outcome(self, other: TextRecords) -> np.ndarray:
        """Per image: the same set of matched words and the same number of false alarms."""
        same_words = np.array(
            [a == b for a, b in zip(self.matched_gt, other.matched_gt, strict=True)], bool
        )
        return same_words & (self.false_alarms == other.false_alarms)
