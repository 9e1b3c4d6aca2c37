"""Tango's score interval for a paired difference of proportions, checked against a brute
force (the likelihood maximized on a grid, the score set scanned), its closed forms at the
edges, and its exact coverage; the exact McNemar p and Clopper-Pearson bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, multinomial, norm

from evalharness.stats.paired_binary import (
    clopper_pearson,
    discordant_counts,
    images_needed,
    mcnemar_exact_p,
    restricted_share,
    tango_interval,
    tango_score,
)

Z95 = float(norm.ppf(0.975))
CASES = [(0, 0, 30), (1, 0, 30), (0, 1, 30), (3, 1, 30), (7, 2, 30), (15, 15, 30), (30, 0, 30),
         (0, 30, 30), (29, 1, 30), (5, 5, 100), (40, 20, 300), (0, 0, 800), (4, 0, 800),
         (1, 0, 1), (0, 0, 1), (2, 0, 5)]  # fmt: skip


def brute_score(d0: np.ndarray, b: int, c: int, n: int) -> np.ndarray:
    """The score statistic with the restricted MLE found by brute force: the multinomial
    log-likelihood under p_b - p_c = d0, maximized over p_c on a 20,001-point grid."""
    out = np.empty(len(d0))
    for i, d in enumerate(d0):
        q_lo, q_hi = max(0.0, -d), (1 - d) / 2
        q = np.linspace(q_lo, q_hi, 20001)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = (
                np.where(b > 0, b * np.log(q + d), 0.0)
                + np.where(c > 0, c * np.log(q), 0.0)
                + np.where(n - b - c > 0, (n - b - c) * np.log(1 - 2 * q - d), 0.0)
            )
        qh = q[np.nanargmax(np.where(np.isfinite(ll), ll, -np.inf))]
        var = n * (2 * qh + d - d * d)
        num = b - c - n * d
        out[i] = 0.0 if num == 0 else (num / math.sqrt(var) if var > 0 else np.sign(num) * np.inf)
    return out


@pytest.mark.parametrize(("b", "c", "n"), CASES)
def test_interval_is_the_brute_force_score_set(b, c, n):
    lo, hi = tango_interval(b, c, n)
    grid = np.linspace(-1 + 1e-6, 1 - 1e-6, 801)
    inside = np.abs(brute_score(grid, b, c, n)) <= Z95
    assert inside.any()
    # The score set is one interval, and it is Tango's, up to the grid's step (0.0025).
    hits = grid[inside]
    assert np.all(np.diff(np.nonzero(inside)[0]) == 1)
    assert abs(hits.min() - lo) < 0.003 or (lo == -1 and hits.min() < -0.997)
    assert abs(hits.max() - hi) < 0.003 or (hi == 1 and hits.max() > 0.997)
    assert lo <= (b - c) / n <= hi


@pytest.mark.parametrize(("b", "c", "n"), [(3, 1, 30), (40, 20, 300), (0, 5, 50), (9, 0, 9)])
def test_restricted_share_maximizes_the_likelihood(b, c, n):
    from scipy.optimize import minimize_scalar

    for d in np.linspace(-0.9, 0.9, 13):
        lo, hi = max(0.0, -d), (1 - d) / 2

        def nll(q, d=d):
            terms = [(b, q + d), (c, q), (n - b - c, 1 - 2 * q - d)]
            return -sum(k * math.log(max(p, 1e-300)) for k, p in terms if k > 0)

        best = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
        assert abs(restricted_share(d, b, c, n) - best.x) < 1e-6


@pytest.mark.parametrize("n", [1, 30, 800, 10_000])
def test_no_change_gives_z2_over_n_plus_z2(n):
    """b = c = 0: the bootstrap's [0, 0]; Tango keeps +-z^2 / (n + z^2)."""
    lo, hi = tango_interval(0, 0, n)
    w = Z95**2 / (n + Z95**2)
    assert lo == pytest.approx(-w, abs=1e-10) and hi == pytest.approx(w, abs=1e-10)
    lo90, hi90 = tango_interval(0, 0, n, 0.90)
    assert hi90 == pytest.approx(norm.ppf(0.95) ** 2 / (n + norm.ppf(0.95) ** 2), abs=1e-10)
    assert 100 * hi == pytest.approx({1: 79.3, 30: 11.35, 800: 0.478, 10_000: 0.0384}[n], rel=2e-3)


@pytest.mark.parametrize("n", [1, 5, 30, 800])
def test_all_changed_one_way(n):
    """b = n: the upper bound is 1 and the lower one (n - z^2) / (n + z^2), clipped at -1."""
    lo, hi = tango_interval(n, 0, n)
    assert hi == 1.0
    assert lo == pytest.approx(max(-1.0, (n - Z95**2) / (n + Z95**2)), abs=1e-9)
    lo2, hi2 = tango_interval(0, n, n)
    assert (lo2, hi2) == pytest.approx((-hi, -lo), abs=1e-12)


def test_mirror_symmetry_and_nesting():
    for b, c, n in CASES:
        lo, hi = tango_interval(b, c, n)
        lo_m, hi_m = tango_interval(c, b, n)
        assert (lo_m, hi_m) == pytest.approx((-hi, -lo), abs=1e-9)
        lo90, hi90 = tango_interval(b, c, n, 0.90)
        assert lo - 1e-12 <= lo90 <= hi90 <= hi + 1e-12


def test_score_falls_monotonically():
    """What one bracketed root per side relies on: every table with n <= 12, on a grid."""
    d = np.linspace(-1 + 1e-9, 1 - 1e-9, 401)
    for n in range(1, 13):
        for b in range(n + 1):
            for c in range(n - b + 1):
                t = np.array([tango_score(x, b, c, n) for x in d])
                assert np.all(np.diff(t) <= 1e-9), (b, c, n)


def exact_coverage(pb: float, pc: float, n: int, confidence: float = 0.95) -> float:
    """P(interval holds pb - pc), summed over every (b, c) table of n pairs."""
    b, c = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    ok = (b + c) <= n
    b, c = b[ok], c[ok]
    p = multinomial.pmf(np.stack([b, c, n - b - c], 1), n, [pb, pc, 1 - pb - pc])
    bounds = [tango_interval(x, y, n, confidence) for x, y in zip(b, c, strict=True)]
    hit = np.array([lo - 1e-12 <= pb - pc <= hi + 1e-12 for lo, hi in bounds])
    return float(np.sum(p[hit]))


def test_exact_coverage_near_nominal_at_n_30():
    """Exact coverage (every table enumerated) at n = 30. Over 15 share pairs (changed
    share 2-40%, one way or split) measured: Tango 0.944-1.000, mean 0.978 (at n = 100:
    0.936-0.986, mean 0.958); Wald 0.453-1.000, mean 0.848. At 2% changing one way the
    Wald and percentile-bootstrap intervals cover 45%: 55% of runs see no change, [0, 0]."""
    shares = [(0.015, 0.005), (0.02, 0.0), (0.05, 0.05), (0.1, 0.0), (0.2, 0.2), (0.3, 0.1)]
    cov = [exact_coverage(pb, pc, 30) for pb, pc in shares]
    assert min(cov) > 0.94
    assert 0.95 < np.mean(cov) < 0.99


def test_mcnemar_exact():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(0, 6) == pytest.approx(2 * 0.5**6)
    assert mcnemar_exact_p(7, 2) == pytest.approx(binomtest(2, 9, 0.5).pvalue)


def test_clopper_pearson():
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(0, 30), (1, 30), (12, 30), (30, 30), (4, 800)]:
        lo, hi = clopper_pearson(k, n)
        ref = proportion_confint(k, n, alpha=0.05, method="beta")
        assert (lo, hi) == pytest.approx((float(ref[0]), float(ref[1])), abs=1e-9)
    assert clopper_pearson(0, 30)[1] == pytest.approx(1 - 0.025 ** (1 / 30))
    with pytest.raises(ValueError):
        clopper_pearson(5, 4)


def test_images_needed():
    # None changed: z^2 / (N + z^2) <= m, i.e. N = z^2 (1 - m) / m (765 for 0.5 points).
    m = 0.005
    assert images_needed(0, 0, 30, m) == math.ceil(Z95**2 * (1 - m) / m)
    # Some changed: the counts scale with N, and the half-width then is m.
    n_new = images_needed(5, 3, 100, m)
    lo, hi = tango_interval(5 * n_new / 100, 3 * n_new / 100, n_new)
    assert (hi - lo) / 2 == pytest.approx(m, rel=2e-3)
    assert images_needed(5, 3, 100, 0.5) == 100  # already narrower than that
    assert images_needed(5, 3, 100, 1.5) is None


def test_discordant_counts():
    a = np.array([1, 1, 0, 0, 1], bool)
    b = np.array([1, 0, 1, 1, 1], bool)
    assert discordant_counts(a, b) == (2, 1, 5)


def test_bad_counts_are_refused():
    for b, c, n in [(-1, 0, 5), (3, 3, 5), (0, 0, 0)]:
        with pytest.raises(ValueError):
            tango_interval(b, c, n)
