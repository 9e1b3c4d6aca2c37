"""Paired comparisons of two configs evaluated on the same images.

Accuracy differences between pipelines on the same images are paired data: the information
is in the discordant images (right in one, wrong in the other). Exact McNemar tests those;
a paired bootstrap (resampling images, the same resample for every quantity) gives intervals
for differences that are consistent with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

DEFAULT_BOOTSTRAP = 2000


def bootstrap_indices(n: int, b: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """b x n resampled image indices; drawn once and reused so all CIs stay paired."""
    return np.random.default_rng(seed).integers(0, n, size=(b, n))


def bootstrap_ci(per_sample: np.ndarray, idx: np.ndarray, level: float = 0.95):
    """Percentile CI of the mean of a per-sample quantity (e.g. correct_B - correct_A)."""
    means = per_sample[idx].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c."""
    if b + c == 0:
        return 1.0
    return float(binomtest(min(b, c), b + c, 0.5).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjustment (controls the family-wise error rate)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class PairResult:
    acc_a: float
    acc_b: float
    delta: float  # acc_b - acc_a, in points
    delta_lo: float
    delta_hi: float
    right_to_wrong: int  # right under A, wrong under B
    wrong_to_right: int
    p_mcnemar: float
    flipped: list[str]


def compare_pair(a: np.ndarray, b: np.ndarray, sample_ids, idx: np.ndarray) -> PairResult:
    """a, b: boolean correctness per image, aligned on the same images."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    r2w = int((a & ~b).sum())
    w2r = int((~a & b).sum())
    lo, hi = bootstrap_ci(b.astype(float) - a.astype(float), idx)
    flipped = [str(s) for s, x, y in zip(sample_ids, a, b, strict=True) if x != y]
    return PairResult(
        acc_a=a.mean() * 100,
        acc_b=b.mean() * 100,
        delta=(b.mean() - a.mean()) * 100,
        delta_lo=lo * 100,
        delta_hi=hi * 100,
        right_to_wrong=r2w,
        wrong_to_right=w2r,
        p_mcnemar=mcnemar_exact(r2w, w2r),
        flipped=flipped,
    )
