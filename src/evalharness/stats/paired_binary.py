"""Intervals and tests for paired binary outcomes: one image, right or wrong under A and B.

The difference of two accuracies on the same images is (b - c) / n, where b and c count the
images that change one way and the other (the discordant pairs) and n counts all images.
A percentile bootstrap of it collapses to [0, 0] when no image changes (b = c = 0): every
resample has no discordant image. That reads as "no effect" at any n, including n = 30,
where an effect of 10 points can hide in 30 unchanged images.

Tango's (1998) score interval inverts the score test of H0: delta = d0, whose variance is
taken at the restricted maximum likelihood under H0, not at the observed shares; so it
keeps its width where the observed table is degenerate. At b = c = 0 its bounds are
+-z^2 / (n + z^2): +-11.4 points at n = 30, +-0.48 at n = 800 (95%). Its exact coverage
(every table enumerated, 15 pairs of shares changing 2-40% of images) measured 0.944-1.000,
mean 0.978, at n = 30 and 0.936-0.986, mean 0.958, at n = 100; Wald's 0.453-1.000 and
0.777-0.986 (tests/test_paired_binary.py). Newcombe's method 10, the usual alternative,
combines two Wilson intervals; Tango's comes from one likelihood, which a brute force can
check directly, so it is the one here.

Tango, T. (1998). Equivalence test and confidence interval for the difference in
proportions for the paired-sample design. Statistics in Medicine 17, 891-908.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.stats import beta, binomtest, norm

# Bounds are searched inside (-1, 1): at +-1 the score's variance is 0 (0/0 at the edge).
EDGE = 1e-12
XTOL = 1e-12  # root tolerance in shares: 1e-10 points, far below any printed digit


def _check_counts(b: float, c: float, n: float) -> None:
    if n <= 0 or b < 0 or c < 0 or b + c > n:
        raise ValueError(f"need 0 <= b, c and b + c <= n, n > 0; got b={b}, c={c}, n={n}")


def restricted_share(d0: float, b: float, c: float, n: float) -> float:
    """Maximum-likelihood share of the c cell when the difference is held at d0.

    The root of 2n q^2 + w q - c d0 (1 - d0) = 0, w = -b - c + (2n - b + c) d0, that lies
    in the parameter space (Tango's eq. 3); it is what makes the interval honest at
    b = c = 0: the variance is the hypothesis's, not the sample's zero.
    """
    w = -b - c + (2 * n - b + c) * d0
    disc = w * w + 8 * n * c * d0 * (1 - d0)
    return (math.sqrt(max(disc, 0.0)) - w) / (4 * n)


def tango_score(d0: float, b: float, c: float, n: float) -> float:
    """Tango's score statistic for H0: (p_b - p_c) = d0; 0 where the numerator is 0."""
    num = b - c - n * d0
    if num == 0:
        return 0.0
    q = restricted_share(d0, b, c, n)
    var = n * (2 * q + d0 - d0 * d0)
    if var <= 0:
        return math.copysign(math.inf, num)
    return num / math.sqrt(var)


def tango_interval(b: float, c: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided score interval for (b - c) / n, as shares in [-1, 1].

    b, c: images that changed one way and the other (for delta = B - A: b = wrong under A
    and right under B, c = the reverse); n: all paired images. Real-valued counts are
    accepted (the n needed for a margin is found by scaling them). The bounds are the
    points where the score statistic equals +-z; it falls monotonically in d0 (checked
    against a brute-force likelihood grid in tests/test_paired_binary.py), so one bracketed
    root on each side of the estimate is the whole confidence set.
    """
    _check_counts(b, c, n)
    z = float(norm.ppf(0.5 + confidence / 2))
    est = (b - c) / n
    lo = -1.0
    if est > -1 and tango_score(-1 + EDGE, b, c, n) > z:
        lo = brentq(lambda d: tango_score(d, b, c, n) - z, -1 + EDGE, est, xtol=XTOL)
    hi = 1.0
    if est < 1 and tango_score(1 - EDGE, b, c, n) < -z:
        hi = brentq(lambda d: tango_score(d, b, c, n) + z, est, 1 - EDGE, xtol=XTOL)
    return float(lo), float(hi)


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of b against b + c at 1/2."""
    if b + c == 0:
        return 1.0
    return float(binomtest(int(min(b, c)), int(b + c), 0.5).pvalue)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial share k / n.

    Used as the bound on the share of images that could change between two configs: at
    k = 0 its upper end, 1 - (alpha/2)^(1/n) (3.69 / n at 95%), is within 4% of Tango's
    z^2 / (n + z^2) for the same images, so the two kinds of metric get the same width.
    """
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, n > 0; got k={k}, n={n}")
    a = (1 - confidence) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def images_needed(
    b: float, c: float, n: float, half_width: float, confidence: float = 0.95
) -> int | None:
    """The n at which Tango's interval, for this run's shares b/n and c/n, is +-half_width.

    Scaling the counts keeps the run's share of changed images, so the answer follows
    1/sqrt(n) when images change and 1/n when none do (z^2 (1 - m) / m at b = c = 0).
    None when the half-width is not reachable (it must be in (0, 1)).
    """
    _check_counts(b, c, n)
    if not 0 < half_width < 1:
        return None

    def width(m: float) -> float:
        lo, hi = tango_interval(b * m / n, c * m / n, m, confidence)
        return (hi - lo) / 2

    return smallest_n(width, half_width, n)


def smallest_n(width, target: float, n: float) -> int | None:
    """The smallest image count m >= n at which the decreasing `width(m)` is <= target: n
    itself, else a root bracketed by quadrupling (None beyond 1e12 images)."""
    if width(n) <= target:
        return int(n)
    lo, hi = float(n), float(n)
    while width(hi) > target:
        lo, hi = hi, hi * 4
        if hi > 1e12:
            return None
    return int(math.ceil(brentq(lambda m: width(m) - target, lo, hi, xtol=0.5)))


def discordant_counts(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int]:
    """(better, worse, n) of per-image correctness B against A: the b, c, n of this module."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return int((b & ~a).sum()), int((a & ~b).sum()), int(a.size)
