"""One config against another on the same images: the paired difference, its interval, the
verdict, and the part of the gap that error rows make.

Every reader of results (findings, explain, the report, the Python API) judges a difference
through `contrast()`, so they say the same words with the same numbers:

- the interval: for a metric that is 100 x the mean of per-image 0/1 scores (top-1), Tango's
  score interval from the images that changed each way (honest when none changed); for any
  other metric (mAP, hmean, PSNR) the paired image bootstrap, widened for the changes a run
  of n images could have missed (stats/verdict.py says how, with the measurement);
- the verdict: "changes the result", "no effect within ±m", "inconclusive" (stats/verdict.py);
- the error split: images that failed in one config and not the other (a file one decoder
  cannot read) move the metric as misses, but they are not a difference in what the model
  saw; the gap is split into their part and the part of the images both configs scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalharness.analysis.results import RunResults
from evalharness.stats.paired import PairResult, compare_values, percentile_ci
from evalharness.stats.verdict import (
    PER_IMAGE_RANGE,
    PairedInterval,
    Verdict,
    binary_paired_interval,
    bootstrap_paired_interval,
    margin_for,
    verdict,
)


@dataclass(frozen=True)
class ErrorSplit:
    """metric(B) - metric(A) = errors + scored (exactly): `errors` is what the images that
    failed in one config only contribute, `scored` what the images both scored do."""

    images: int  # images that failed in exactly one of A and B
    errors: float
    scored: float
    scored_ci: tuple[float, float]

    @property
    def only_errors(self) -> bool:
        """The whole difference is error rows: no image both configs scored moved."""
        return self.images > 0 and self.scored == 0 and self.scored_ci == (0.0, 0.0)


@dataclass(frozen=True)
class Contrast:
    a_id: str
    b_id: str
    pair: PairResult  # point difference, bootstrap interval, images worse/better, sign test
    verdict: Verdict  # on the whole gap
    errors: ErrorSplit | None  # None: no image failed in only one of them
    scored: Verdict | None = None  # on the images both scored, when errors split the gap

    @property
    def changed(self) -> int:
        return self.pair.right_to_wrong + self.pair.wrong_to_right

    @property
    def judged(self) -> Verdict:
        """What a factor's verdict reads: the images both configs scored (a file that one
        config cannot read is its own term, not a change in what the model saw)."""
        return self.scored if self.scored is not None else self.verdict


def margin(res: RunResults, setting: float | None = None) -> float:
    """findings.margin for the run's metric: the setting, else the metric's default."""
    return margin_for(res.metric, setting)


def paired_interval(res: RunResults, a_id: str, b_id: str, pair: PairResult, va, vb):
    """The interval the verdict is read from (module docstring)."""
    n = len(res.sample_ids)
    if res.task.paired_binary:
        return binary_paired_interval(pair.wrong_to_right, pair.right_to_wrong, n)
    changed = int(res.changed_images(a_id, b_id).sum())
    per_image = PER_IMAGE_RANGE.get(res.metric, 100.0)
    if per_image is None:  # unbounded per image (PSNR): the spread of the run's images
        scores = np.concatenate([res.scores(a_id), res.scores(b_id)])
        per_image = float(np.ptp(scores[np.isfinite(scores)])) if scores.size else None
    return bootstrap_paired_interval(pair.delta, vb[1:] - va[1:], changed, n, per_image)


def contrast(
    res: RunResults, a_id: str, b_id: str, idx: np.ndarray, m: float, values=None
) -> Contrast:
    """B against A on the run's images; `values(config_id)` may cache [point, resamples]."""
    values = values or (lambda cid: res.values(cid, idx))
    va, vb = values(a_id), values(b_id)
    pair = compare_values(va, vb, res.scores(a_id), res.scores(b_id), res.sample_ids)
    interval = paired_interval(res, a_id, b_id, pair, va, vb)
    split = error_split(res, a_id, b_id, idx, va, vb)
    scored = None
    if split is not None:
        scored = verdict(scored_interval(res, a_id, b_id, idx, va), m, res.task.unit)
    return Contrast(a_id, b_id, pair, verdict(interval, m, res.task.unit), split, scored)


def scored_interval(res: RunResults, a_id: str, b_id: str, idx, va) -> PairedInterval:
    """The interval of the part of the gap the images both configs scored make."""
    n = len(res.sample_ids)
    keep = ~res.error_flips(a_id, b_id)
    sa, sb = res.scores(a_id), res.scores(b_id)
    if res.task.paired_binary:
        better = int(((sb > sa) & keep).sum())
        worse = int(((sb < sa) & keep).sum())
        return binary_paired_interval(better, worse, n)
    hybrid = res.hybrid_values(a_id, b_id, idx)
    changed = int((res.changed_images(a_id, b_id) & keep).sum())
    per_image = PER_IMAGE_RANGE.get(res.metric, 100.0)
    if per_image is None:
        both = np.concatenate([sa[keep], sb[keep]])
        per_image = float(np.ptp(both[np.isfinite(both)])) if both.size else None
    diff = hybrid - va
    return bootstrap_paired_interval(float(diff[0]), diff[1:], changed, n, per_image)


def error_split(res: RunResults, a_id, b_id, idx, va, vb) -> ErrorSplit | None:
    images = int(res.error_flips(a_id, b_id).sum())
    if not images:
        return None
    hybrid = res.hybrid_values(a_id, b_id, idx)
    if hybrid is None:
        return None
    scored = hybrid - va
    return ErrorSplit(images, float(vb[0] - hybrid[0]), float(scored[0]),
                      percentile_ci(scored[1:]))  # fmt: skip


def matched_pairs_interval(diffs: np.ndarray, changed: int, n: int, metric: str):
    """The mean paired difference over matched config pairs ([point, resamples]): a
    marginal contrast when the single change is not available, read as a bootstrap."""
    return bootstrap_paired_interval(
        float(diffs[0]), diffs[1:], changed, n, PER_IMAGE_RANGE.get(metric, 100.0) or None
    )


__all__ = [
    "Contrast",
    "ErrorSplit",
    "PairedInterval",
    "contrast",
    "margin",
    "matched_pairs_interval",
    "paired_interval",
]
