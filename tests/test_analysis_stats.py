"""Seeded simulations: the statistics keep their promises."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from evalharness.analysis.attribution import attribute, shapley_per_sample
from evalharness.analysis.effects import variance_shares
from evalharness.analysis.reproduce import configs_matching
from evalharness.stats.intervals import wilson_interval
from evalharness.stats.paired import bootstrap_indices, compare_pair, holm, mcnemar_exact


def test_wilson_coverage_is_95_percent():
    rng = np.random.default_rng(0)
    covered, total = 0, 0
    for n in (100, 500, 2000):
        p = rng.uniform(0.05, 0.95, 20000)
        k = rng.binomial(n, p)
        lo, hi = wilson_interval(k, n)
        covered += ((lo <= p) & (p <= hi)).sum()
        total += len(p)
    assert 0.94 <= covered / total <= 0.96


def test_wilson_stays_inside_0_1_at_the_edges():
    lo, hi = wilson_interval(np.array([0, 50]), 50)
    assert lo[0] == 0 and hi[0] > 0.05 and hi[1] == 1 and lo[1] < 0.95


def test_mcnemar_false_positive_rate_under_the_null():
    rng = np.random.default_rng(1)
    rejections = 0
    trials = 2000
    for _ in range(trials):
        discordant = rng.binomial(1000, 0.06)  # 6% of images flip, in either direction equally
        b = rng.binomial(discordant, 0.5)
        rejections += mcnemar_exact(b, discordant - b) < 0.05
    assert rejections / trials <= 0.05 + 0.015


def test_mcnemar_matches_the_exact_binomial():
    assert mcnemar_exact(0, 0) == 1.0
    assert abs(mcnemar_exact(2, 10) - 2 * binom.cdf(2, 12, 0.5)) < 1e-12


def test_holm_adjustment():
    adj = holm([0.01, 0.04, 0.03, 0.5])
    assert np.allclose(adj, [0.04, 0.09, 0.09, 0.5])


def _holm_by_hand(pvalues) -> np.ndarray:
    """The step-down loop evalharness used before statsmodels: the reference to match."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


@pytest.mark.parametrize("seed", range(5))
def test_holm_by_statsmodels_equals_the_former_loop(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, 40) ** 2
    p[:6] = p[6]  # ties, as exact McNemar p-values of equal discordant counts give
    p[7] = 1.0
    np.testing.assert_array_equal(holm(p), _holm_by_hand(p))  # bit for bit
    assert holm([]).shape == (0,)


def _simulate(n, rng, effects=(-0.03, -0.01, 0.0), base=0.8):
    """Per-image correctness for every config of 3 binary factors (paired via difficulty)."""
    difficulty = rng.uniform(0, 1, n)
    noise = rng.uniform(0, 1, (8, n)) < 0.03  # config-specific flips on top

    def correctness(cfg: dict) -> np.ndarray:
        bits = [cfg[f] == "b" for f in ("f0", "f1", "f2")]
        code = bits[0] * 4 + bits[1] * 2 + bits[2]
        acc = base + sum(e for e, on in zip(effects, bits, strict=True) if on)
        return (difficulty < acc) ^ noise[code]

    return correctness


def test_attribution_ranks_a_planted_3_point_effect_first():
    rng = np.random.default_rng(2)
    a = {"f0": "a", "f1": "a", "f2": "a"}
    b = {"f0": "b", "f1": "b", "f2": "b"}
    idx = bootstrap_indices(2000, 200)
    first = 0
    for _ in range(200):
        att = attribute(a, b, _simulate(2000, rng), idx)
        first += att.ranked()[0][0] == "f0"
    assert first / 200 >= 0.95


def test_shapley_terms_sum_to_the_gap_exactly():
    rng = np.random.default_rng(3)
    a = {"f0": "a", "f1": "a", "f2": "a"}
    b = {"f0": "b", "f1": "b", "f2": "b"}
    att = attribute(a, b, _simulate(2000, rng), bootstrap_indices(2000, 100))
    assert abs(sum(t[0] for t in att.terms.values()) - att.gap) < 1e-12
    assert abs(att.residual) < 1e-12


def test_shapley_splits_a_pure_interaction_equally():
    # v = 1 only when both factors are switched: each gets half.
    def value(s):
        return np.array([1.0 if s == {"x", "y"} else 0.0])

    phi = shapley_per_sample(["x", "y"], lambda s: value(set(s)))
    assert phi["x"][0] == phi["y"][0] == 0.5


def test_pair_comparison_counts_flips():
    a = np.array([1, 1, 1, 0, 0], bool)
    b = np.array([1, 0, 0, 1, 0], bool)
    r = compare_pair(a, b, ["s0", "s1", "s2", "s3", "s4"], bootstrap_indices(5, 50))
    assert (r.right_to_wrong, r.wrong_to_right) == (2, 1)
    assert r.flipped == ["s1", "s2", "s3"]
    assert abs(r.delta - (-20.0)) < 1e-9
    assert r.delta_lo <= r.delta <= r.delta_hi


def test_variance_shares_find_the_only_factor_that_matters():
    summary = pd.DataFrame(
        {"f": ["x", "x", "y", "y"], "g": ["p", "q", "p", "q"], "top1": [90.0, 90.0, 70.0, 70.0]}
    )
    shares = variance_shares(summary, ["f", "g"]).set_index("factor").share
    assert shares["f"] == 1.0 and shares["g"] == 0.0


def test_reproduce_lists_configs_whose_interval_contains_the_target():
    summary = pd.DataFrame(
        {"config_id": ["a", "b", "c"], "backend": ["t", "o", "v"], "top1": [77.0, 80.0, 60.0],
         "top1_lo": [74.0, 77.2, 57.0], "top1_hi": [80.0, 82.8, 63.0]}
    )  # fmt: skip
    hits = configs_matching(summary, 77.28, ["backend"])
    assert hits.config_id.tolist() == ["a", "b"]
