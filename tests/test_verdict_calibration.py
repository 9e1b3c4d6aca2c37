"""The verdict rule against known truth, and its one-line text.

Simulated paired binary outcomes (top-1 of two configs on the same images) with a true
difference of 0, of the margin (0.5 points) and of 3x the margin, 1,000 runs each, at
n = 30, 300 and 3,000, with 2% of the images changing (both ways) or changes only in the
effect's direction. What must hold:

- "changes the result" where the truth is 0: at most 5%, up to Monte Carlo noise (a test
  exactly at 5% reads up to 6.4% in 1,000 runs, 2 standard errors);
- "no effect within +-m" where the truth is m: at most 5%;
- at n = 30 "inconclusive" nearly always (one image is 3.3 points there).

Measured (the seeds below): Tango, "changes" at truth 0: 0.0-6.1% (its exact size, summed
over the discordant counts, is 4.4-5.2% for 5 to 300 expected changed images: 5.2% at 30,
the 6.1% cell); "no effect" at truth m: 0.0-3.7%; "inconclusive" at n = 30: 99.9-100%.
The widened bootstrap on the same outcomes: "changes" at 0: 0.0-5.7%; "no effect" at m:
0.0-3.8%; "inconclusive" at n = 30: 100%. Both conclude where the data allow: 1.5 points
at n = 3,000 give "changes" in 100% of runs; no effect with 0.5% of images changing each
way gives "no effect" in 67% (Tango) and 69% (bootstrap) of runs at n = 3,000.
The old rule (percentile bootstrap, "no effect" when the interval holds 0) said "no
effect" in 72% of the n = 30 runs with 1% of images changing one way (a real 1-point
drop): every run with no changed image gives [0, 0].

mAP through the image bootstrap (slow; 150 runs a cell, 200 resamples; 2-7% of images
change): at truth 0 "changes" 0.0% at n = 30 and 300; at truth m (-0.501) "no effect"
0.0%, "changes" 0.0% / 0.7%; at 3m (-1.503) "changes" 0.0% / 44.0%, never "no effect";
"inconclusive" 100% at n = 30. The old rule ("no effect" when the percentile interval
holds 0), on the 300-run table's runs, said "no effect" at 3m (a real 1.5-point drop) in
94% / 60% / 25% of the runs at n = 30 / 100 / 300.
`python benchmarks/map_interval_coverage.py --calibration --n 30 100 300 --draws 300
--resamples 200` prints the 300-run table (at n = 300: "changes" 0.0%, 0.7%, 41.3%).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from evalharness.stats.map_interval import (
    WIDTH_FACTOR,
    coverage_note,
    debiased_interval,
    half_sample_indices,
    objects_per_class,
)
from evalharness.stats.verdict import (
    CHANGES,
    DEFAULT_MARGINS,
    INCONCLUSIVE,
    NO_EFFECT,
    PairedInterval,
    binary_paired_interval,
    bootstrap_paired_interval,
    margin_for,
    verdict,
)

M = 0.5  # points
RUNS = 1000
MC = 2 * math.sqrt(0.05 * 0.95 / RUNS)  # 2 standard errors of a 5% rate
NS = (30, 300, 3000)
RESAMPLES = 400


def shares(pattern: str, truth: float) -> tuple[float, float]:
    """(p_better, p_worse) with p_better - p_worse = truth (a share)."""
    if pattern == "split":  # 2% of images change, in both directions
        return (0.02 + truth) / 2, (0.02 - truth) / 2
    return (truth, 0.0) if truth > 0 else (0.005, 0.005)  # one way (0.5% each at 0)


@cache
def tango_word(b: int, c: int, n: int) -> str:
    return verdict(binary_paired_interval(b, c, n), M).word


@cache
def bootstrap_word(b: int, c: int, n: int) -> str:
    """The widened image bootstrap on paired bits: a resample of n images is a multinomial
    draw of (better, worse, unchanged) counts (seeded by the table, so cacheable)."""
    rng = np.random.default_rng([b, c, n])
    counts = rng.multinomial(n, [b / n, c / n, 1 - (b + c) / n], size=RESAMPLES)
    diff = (counts[:, 0] - counts[:, 1]) / n * 100
    return verdict(bootstrap_paired_interval((b - c) / n * 100, diff, b + c, n), M).word


def rates(word_of, pattern: str, mult: int, n: int) -> dict[str, float]:
    pb, pc = shares(pattern, mult * M / 100)
    rng = np.random.default_rng([mult, n, len(pattern)])
    tables = rng.multinomial(n, [pb, pc, 1 - pb - pc], size=RUNS)
    words = [word_of(int(b), int(c), n) for b, c, _ in tables]
    return {w: float(np.mean([x == w for x in words])) for w in (CHANGES, NO_EFFECT, INCONCLUSIVE)}


@pytest.mark.parametrize("word_of", [tango_word, bootstrap_word], ids=["tango", "bootstrap"])
@pytest.mark.parametrize("pattern", ["split", "one_way"])
def test_verdicts_hold_their_error_rates(word_of, pattern):
    for n in NS:
        at_zero, at_m, at_3m = (rates(word_of, pattern, mult, n) for mult in (0, 1, 3))
        assert at_zero[CHANGES] <= 0.05 + MC, (n, at_zero)
        assert at_m[NO_EFFECT] <= 0.05, (n, at_m)
        assert at_3m[NO_EFFECT] == 0.0, (n, at_3m)
        if n == 30:
            assert min(r[INCONCLUSIVE] for r in (at_zero, at_m, at_3m)) >= 0.95
    # And the rule can conclude: 3,000 images resolve 1.5 points, and (few changes) 0.
    assert rates(word_of, pattern, 3, 3000)[CHANGES] > 0.95
    if pattern == "one_way":
        assert rates(word_of, pattern, 0, 3000)[NO_EFFECT] > 0.5


def test_the_old_rule_said_no_effect_where_a_drop_hides():
    """The percentile bootstrap's [0, 0] at n = 30 when no image changed: with a real
    1-point drop (1% of images, one way) the old rule said "no effect" in most runs."""
    rng = np.random.default_rng(0)
    tables = rng.multinomial(30, [0.01, 0.0, 0.99], size=RUNS)
    old_no_effect = np.mean(tables[:, 0] == 0)  # no discordant image: interval [0, 0]
    assert old_no_effect > 0.7
    assert all(tango_word(int(b), int(c), 30) == INCONCLUSIVE for b, c, _ in tables)


# ---------------------------------------------------------------------- the rule itself


def interval(est, ci90, ci95, n=800) -> PairedInterval:
    return PairedInterval(est, ci90, ci95, n)


def test_three_words():
    assert verdict(interval(-14.2, (-16.1, -12.2), (-16.5, -11.8)), M).word == CHANGES
    assert verdict(interval(0.1, (-0.2, 0.4), (-0.3, 0.5)), M).word == NO_EFFECT
    assert verdict(interval(0.3, (-3.4, 3.9), (-4.1, 4.6)), M).word == INCONCLUSIVE
    # The 90% interval must lie strictly inside +-m.
    assert verdict(interval(0.0, (-0.5, 0.2), (-0.6, 0.3)), M).word == INCONCLUSIVE
    # Excludes 0 and lies within +-m: a real change, smaller than the margin.
    v = verdict(interval(0.3, (0.15, 0.45), (0.1, 0.48)), M)
    assert v.word == CHANGES and v.text().endswith("within ±0.5")
    # No interval (a metric undefined on this set) decides nothing.
    assert verdict(interval(0.0, (np.nan, np.nan), (np.nan, np.nan)), M).word == INCONCLUSIVE


def test_text_lines():
    v = verdict(interval(0.1, (-0.2, 0.4), (-0.3, 0.5)), M)
    assert v.text() == "no effect within ±0.5 points (+0.1, 90% CI [-0.2, +0.4])"
    v = verdict(interval(-14.2, (-16.1, -12.2), (-16.5, -11.8)), M)
    assert v.text() == "changes the result: -14.2 [-16.5, -11.8] points"
    v = verdict(binary_paired_interval(0, 0, 30), M)
    assert v.text() == (
        "inconclusive: +0.0 [-11.4, +11.4] points; this n (30) detects about ±11 points, "
        "about 770 images would resolve ±0.5"
    )
    v = verdict(interval(0.012, (-0.02, 0.04), (-0.03, 0.05), 100), 0.05)
    assert v.text() == "no effect within ±0.05 points (+0.01, 90% CI [-0.02, +0.04])"


def test_no_change_at_n_30_is_inconclusive_not_no_effect():
    """The issue's case: 0 of 30 images changed. Tango: +-11.4 points, detectable 11.35,
    z^2 (1 - m) / m = 765 images for +-0.5; at 800 images the 90% interval is +-0.34."""
    v = verdict(binary_paired_interval(0, 0, 30), M)
    assert v.word == INCONCLUSIVE
    assert v.detectable == pytest.approx(11.35, abs=0.01)
    assert v.n_needed == 765
    assert verdict(binary_paired_interval(0, 0, 800), M).word == NO_EFFECT


def test_bootstrap_interval_with_no_changed_image():
    """mAP of two configs identical on all n images: the bootstrap is [0, 0]; the verdict
    uses the bound on the share of images that could change (3.69 / n, times 100)."""
    iv = bootstrap_paired_interval(0.0, np.zeros(1000), 0, 30)
    assert iv.ci95[1] == pytest.approx(100 * (1 - 0.025 ** (1 / 30)))
    assert verdict(iv, M).word == INCONCLUSIVE
    assert verdict(bootstrap_paired_interval(0.0, np.zeros(10), 0, 2000), M).word == NO_EFFECT
    # Unbounded per-image effect (PSNR without a range): nothing can be said.
    v = verdict(bootstrap_paired_interval(0.0, np.zeros(10), 0, 300, None), 0.05, "dB")
    assert v.word == INCONCLUSIVE and v.n_needed is None


def test_bootstrap_floor_for_changes_never_seen():
    rng = np.random.default_rng(1)
    diff = rng.normal(-1.0, 0.3, 2000)
    lo, hi = np.quantile(diff, [0.025, 0.975])
    floor = 100 * (1 - 0.025 ** (1 / 300))  # 1.22 points at n = 300
    iv = bootstrap_paired_interval(-1.0, diff, 300, 300)
    assert iv.ci95 == pytest.approx(
        (-1 - math.hypot(-1 - lo, floor), -1 + math.hypot(hi + 1, floor))
    )
    # Many images: the floor (0.018 points at 20,000) vanishes beside the bootstrap.
    big = bootstrap_paired_interval(-1.0, diff, 300, 20_000)
    assert big.ci95 == pytest.approx((lo, hi), abs=2e-3)
    # One changed image of tiny effect at n = 30: the bootstrap alone says +-0.03; a kind
    # of change never seen could still hide 11.6 points.
    tiny = rng.normal(0.0, 0.01, 2000)
    v = verdict(bootstrap_paired_interval(0.0, tiny, 1, 30), M)
    assert v.word == INCONCLUSIVE and v.detectable == pytest.approx(11.57, abs=0.01)
    # No per-image range (PSNR): the Clopper-Pearson stretch on the changed count, the
    # only widening left: 6 of 300 changed, sqrt(0.0431 / 0.02) = 1.47.
    few = bootstrap_paired_interval(-1.0, diff, 6, 300, per_image_range=None)
    assert (few.ci95[1] - few.ci95[0]) / (hi - lo) == pytest.approx(1.47, abs=0.01)


def test_n_needed_scales_with_the_changed_share():
    # Changes in both directions, 4% of 800: the half-width falls as 1/sqrt(n).
    v = verdict(binary_paired_interval(16, 16, 800), M)
    assert v.word == INCONCLUSIVE
    assert v.n_needed == pytest.approx(800 * (v.detectable / M) ** 2, rel=0.1)
    # Nothing changed: as 1/n.
    v = verdict(bootstrap_paired_interval(0.0, np.zeros(5), 0, 100), M)
    assert v.n_needed == pytest.approx(100 * v.detectable / M, rel=0.02)


def test_margins():
    assert margin_for("top1") == 0.5 and margin_for("mAP") == 0.5 and margin_for("hmean") == 0.5
    assert margin_for("psnr_y") == 0.05
    assert margin_for("top1", 1.0) == 1.0
    assert set(DEFAULT_MARGINS) >= {"top1", "top5", "mAP", "mAP50", "hmean", "psnr_y", "ssim_y"}
    with pytest.raises(KeyError, match="findings.margin"):
        margin_for("unknown_metric")
    with pytest.raises(ValueError):
        margin_for("top1", 0.0)
    with pytest.raises(ValueError):
        verdict(interval(0.0, (-1, 1), (-2, 2)), 0.0)


# ---------------------------------------------------------------------- one config's mAP


def test_half_samples_are_complementary_halves():
    h = half_sample_indices(101, pairs=3, seed=0)
    assert h.shape == (6, 50)
    for a, b in ((h[0], h[3]), (h[1], h[4]), (h[2], h[5])):
        assert len(np.intersect1d(a, b)) == 0 and np.all(np.diff(a) > 0)


def test_debiased_interval_arithmetic():
    """D = mean on halves - estimate = 1 point at n = 100 (halves of 50): bias = 1 / (2^0.6
    - 1) = 1.94; the interval is the bootstrap's reflected about 40 - 1.94, 10% wider."""
    rng = np.random.default_rng(0)
    boot = 40.9 + rng.normal(0, 2.0, 4000)  # resamples carry part of the bias too
    iv = debiased_interval(40.0, boot, np.full(200, 41.0), 100)
    assert iv.bias == pytest.approx(1 / (2**0.6 - 1))
    assert iv.corrected == pytest.approx(40.0 - iv.bias)
    q_lo, q_hi = np.quantile(boot, [0.025, 0.975])
    assert iv.lo == pytest.approx(iv.corrected - WIDTH_FACTOR * (q_hi - boot.mean()))
    assert iv.hi == pytest.approx(iv.corrected + WIDTH_FACTOR * (boot.mean() - q_lo))
    # Resamples or halves with no counted object (NaN) are left out.
    same = debiased_interval(40.0, np.r_[boot, np.nan], np.r_[np.full(200, 41.0), np.nan], 100)
    assert (same.lo, same.hi) == pytest.approx((iv.lo, iv.hi))


def test_coverage_note_where_classes_are_sparse():
    assert objects_per_class(np.array([0, 10, 30])) == 20.0
    assert coverage_note(25.0) is None
    assert coverage_note(9.0) == "coverage measured 80% at 9 objects per class (nominal 95%)"


# ---------------------------------------------------------------------- mAP (slow)


def _benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "map_interval_coverage.py"
    spec = importlib.util.spec_from_file_location("map_interval_coverage", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_map_verdicts_through_the_image_bootstrap():
    """Two configs from one simulated population (6,000 images, the detection task's
    records): A with every detection lost on 1% of the images, against A with them lost
    on as many others as make the population difference 0, -0.5 and -1.5 mAP points
    (2-7% of images change). 150 runs a cell, 200 resamples; the rates print with -s.
    Measured, (changes, no effect, inconclusive): see the module docstring's mAP lines."""
    bench = _benchmark()
    rows = bench.population("w20")
    runs = 150
    tol = 2 * math.sqrt(0.05 * 0.95 / runs)
    for mult in (0, 1, 3):
        pair = bench.calibration_pair(rows["A"], mult * M, seed=1)
        assert abs(pair.truth) >= mult * M - 1e-9 and abs(pair.truth) < mult * M + 0.05
        for n in (30, 300):
            r = bench.verdict_rates(pair, n, runs, 200, seed=1 + n)
            print(
                f"truth {pair.truth:+.3f} n {n}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items())
            )
            if mult == 0:
                assert r[CHANGES] <= 0.05 + tol, (n, r)
            if mult == 1:
                assert r[NO_EFFECT] <= 0.05, (n, r)
            if mult == 3:
                assert r[NO_EFFECT] == 0.0, (n, r)
            if n == 30:
                assert r[INCONCLUSIVE] >= 0.95, (mult, r)
