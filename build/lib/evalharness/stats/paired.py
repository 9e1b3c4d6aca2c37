"""Paired comparisons of two configs evaluated on the same images.

Accuracy differences between pipelines on the same images are paired data: the information
is in the discordant images (right in one, wrong in the other). Exact McNemar tests those;
a paired bootstrap (resampling images, the same resample for every quantity) gives intervals
for differences that are consistent with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BOOTSTRAP = 2000


def bootstrap_indices(n: int, b: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """b x n resampled image indices; drawn once and reused so all CIs stay paired."""
    return np.random.default_rng(seed).integers(0, n, size=(b, n))


def bootstrap_ci(per_sample: np.ndarray, idx: np.ndarray, level: float = 0.95):
    """Percentile CI of the mean of a per-sample quantity (e.g. correct_B - correct_A)."""
    return percentile_ci(per_sample[idx].mean(axis=1), level)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest  # scipy.stats takes a second to import: only when used

    return float(binomtest(min(b, c), b + c, 0.5).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjustment (controls the family-wise error rate), by statsmodels'
    maintained `multipletests`; imported here, not at module load (it takes seconds)."""
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        return p.copy()
    from statsmodels.stats.multitest import multipletests

    return multipletests(p, method="holm")[1]


@dataclass
class PairResult:
    acc_a: float  # metric of A (accuracy in points for classification)
    acc_b: float
    delta: float  # metric(B) - metric(A)
    delta_lo: float
    delta_hi: float
    right_to_wrong: int  # images worse under B (right -> wrong for classification)
    wrong_to_right: int  # images better under B
    p_mcnemar: float  # exact two-sided sign test on the discordant images (McNemar)
    flipped: list[str]


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    return float(np.quantile(values, a)), float(np.quantile(values, 1 - a))


def compare_values(
    va: np.ndarray, vb: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, sample_ids
) -> PairResult:
    """Any task: va, vb are [point, resample values...] on one shared index matrix, so the
    interval of the difference is paired; per-image scores give the discordant images."""
    worse = int((scores_b < scores_a).sum())
    better = int((scores_b > scores_a).sum())
    lo, hi = percentile_ci(vb[1:] - va[1:])
    flipped = [str(s) for s, x, y in zip(sample_ids, scores_a, scores_b, strict=True) if x != y]
    return PairResult(
        acc_a=float(va[0]),
        acc_b=float(vb[0]),
        delta=float(vb[0] - va[0]),
        delta_lo=lo,
        delta_hi=hi,
        right_to_wrong=worse,
        wrong_to_right=better,
        p_mcnemar=mcnemar_exact(worse, better),
        flipped=flipped,
    )


def compare_pair(a: np.ndarray, b: np.ndarray, sample_ids, idx: np.ndarray) -> PairResult:
    """a, b: boolean correctness per image, aligned on the same images (accuracy in points)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)

    def values(x: np.ndarray) -> np.ndarray:
        return np.concatenate([[x.mean()], x[idx].mean(axis=1)]) * 100

    return compare_values(values(a), values(b), a.astype(float), b.astype(float), sample_ids)
