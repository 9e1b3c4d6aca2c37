"""The verdict on a paired difference, one rule for every reader of results.

Findings, explain, the report, compare and the Python API all turn a paired interval of
metric(B) - metric(A) into one of three statements, here and nowhere else:

- "changes the result": the 95% paired interval excludes 0;
- "no effect within +-m": both one-sided 95% bounds lie inside +-m (TOST), i.e. the 90%
  paired interval lies inside +-m, m being the `findings.margin` setting in the metric's
  own units;
- "inconclusive": neither. The line then says the interval, the smallest effect this n
  could have detected (the 95% half-width) and about how many images would bring that
  under m.

The old rule said "no effect" whenever every interval contained 0, quoting the point
estimate as the bound: at n = 30 it printed "within +-10 points" where a 15-point drop
fits the data. Equivalence has to be shown by the interval, not by the estimate.

An effect can both exclude 0 and lie inside +-m (real, but smaller than anyone cares
about): the word is then "changes the result", and the line adds "within +-m".

The intervals come from two builders. Paired top-1 (a mean of per-image bits) uses Tango's
score interval (paired_binary.py), honest at b = c = 0. Metrics that are not means of
per-image bits (mAP, hmean, PSNR) use the paired image bootstrap, widened for the changes
a run of n images could have missed: a share up to the Clopper-Pearson bound for a count
of 0 in n, each image moving the metric by up to its range / n
(`bootstrap_paired_interval`, with the measurement that chose it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from evalharness.stats.paired_binary import (
    clopper_pearson,
    images_needed,
    smallest_n,
    tango_interval,
)

CHANGES = "changes the result"
NO_EFFECT = "no effect"
INCONCLUSIVE = "inconclusive"

# findings.margin defaults, in the metric's own units (the summary's: percent points for
# accuracy, mAP and hmean; dB for PSNR; SSIM on its 0..1 scale). One point of top-1 is
# 8 of 800 images; half a point is the smallest change papers print (one decimal).
DEFAULT_MARGINS: dict[str, float] = {
    "top1": 0.5,
    "top5": 0.5,
    "mAP": 0.5,
    "mAP50": 0.5,
    "hmean": 0.5,
    "text_precision": 0.5,
    "text_recall": 0.5,
    "psnr_y": 0.05,
    # The SSIM_y change that goes with psnr_y's 0.05 dB. Measured on 40 ImageNet val
    # images (227 px): bicubic down x2, x3, x4, back up with bilinear, bicubic, Lanczos,
    # Hamming; over the 15 pairs of upsamplers that differ by >= 0.1 dB, SSIM_y (Gaussian
    # window 1.5, BT.601 Y) moved 0.057 per dB (median; 0.028-0.066): 0.0028 for 0.05 dB.
    "ssim_y": 0.003,
}

# How far one image can move the metric, per unit share of images (the metric's full
# range for a mean over images): a share p of changed images moves it by at most p times
# this. It sizes the bootstrap's floor for changes a run never saw. None: unbounded per
# image (PSNR): pass a range from the data, e.g. the spread of per-image PSNR over the run.
PER_IMAGE_RANGE: dict[str, float | None] = {
    **{name: 100.0 for name in ("top1", "top5", "mAP", "mAP50", "hmean")},
    "text_precision": 100.0,
    "text_recall": 100.0,
    "ssim_y": 1.0,
    "psnr_y": None,
}


def margin_for(metric: str, setting: float | None = None) -> float:
    """The margin m: the `findings.margin` setting when given, else the metric's default."""
    if setting is not None:
        if not setting > 0:
            raise ValueError(f"findings.margin must be > 0, got {setting}")
        return float(setting)
    if metric not in DEFAULT_MARGINS:
        raise KeyError(f"no default margin for metric '{metric}': set findings.margin")
    return DEFAULT_MARGINS[metric]


@dataclass(frozen=True)
class PairedInterval:
    """metric(B) - metric(A) with its 90% and 95% paired intervals, in the metric's units.

    images_for(h): about how many images would bring the 95% half-width to h, for this
    run's share of changed images; None leaves the verdict to scale it as 1/sqrt(n).
    """

    estimate: float
    ci90: tuple[float, float]
    ci95: tuple[float, float]
    n: int
    images_for: Callable[[float], int | None] | None = field(
        default=None, compare=False, repr=False
    )


@dataclass(frozen=True)
class Verdict:
    """One paired comparison, judged: the word, the numbers behind it, and one line."""

    word: str
    estimate: float
    ci90: tuple[float, float]
    ci95: tuple[float, float]
    margin: float
    unit: str
    detectable: float  # half-width of the 95% interval: the effect this n can detect
    n: int
    n_needed: int | None  # images for a 95% half-width of `margin`; None: not estimable

    def text(self, digits: int | None = None) -> str:
        """One line, e.g. "changes the result: -14.2 [-16.5, -11.8] points"."""
        d = _digits(self.margin) if digits is None else digits

        def sig(x: float) -> str:
            return f"{x:+.{d}f}"

        m = f"±{self.margin:.{d}f}"
        lo, hi = self.ci95
        if self.word == NO_EFFECT:
            lo90, hi90 = self.ci90
            return (
                f"no effect within {m} {self.unit} ({sig(self.estimate)}, 90% CI "
                f"[{sig(lo90)}, {sig(hi90)}])"
            )
        body = f"{sig(self.estimate)} [{sig(lo)}, {sig(hi)}] {self.unit}"
        if self.word == CHANGES:
            within = _inside(self.ci90, self.margin)
            return f"{CHANGES}: {body}" + (f", within {m}" if within else "")
        if not math.isfinite(self.detectable):
            return f"{INCONCLUSIVE}: {body}; this n ({self.n:,}) cannot bound the effect"
        about = f"±{_about(self.detectable)} {self.unit}"
        text = f"{INCONCLUSIVE}: {body}; this n ({self.n:,}) detects about {about}"
        if self.n_needed is not None and self.n_needed > self.n:
            text += f", about {_round_count(self.n_needed):,} images would resolve {m}"
        return text


def verdict(interval: PairedInterval, margin: float, unit: str = "points") -> Verdict:
    """The verdict on a paired interval: the one rule findings, explain, the report,
    compare and the API share (module docstring). margin > 0, in the metric's units."""
    if not margin > 0:
        raise ValueError(f"the margin must be > 0, got {margin}")
    lo, hi = interval.ci95
    finite = all(math.isfinite(x) for x in (*interval.ci90, *interval.ci95))
    if finite and (lo > 0 or hi < 0):
        word = CHANGES
    elif finite and _inside(interval.ci90, margin):
        word = NO_EFFECT
    else:
        word = INCONCLUSIVE
    detectable = (hi - lo) / 2 if finite else math.inf
    return Verdict(
        word=word,
        estimate=float(interval.estimate),
        ci90=_pair(interval.ci90),
        ci95=_pair(interval.ci95),
        margin=float(margin),
        unit=unit,
        detectable=float(detectable),
        n=int(interval.n),
        n_needed=_n_needed(interval, detectable, margin),
    )


def binary_paired_interval(b: int, c: int, n: int, scale: float = 100.0) -> PairedInterval:
    """Paired difference of two accuracies, B - A, from the images that changed.

    b: images right under B only (wrong -> right), c: right under A only (right -> wrong),
    n: all paired images; scale 100 gives points. Tango's score interval at 90% and 95%.
    """
    ci90 = tango_interval(b, c, n, 0.90)
    ci95 = tango_interval(b, c, n, 0.95)

    def images_for(h: float) -> int | None:
        return images_needed(b, c, n, h / scale, 0.95)

    return PairedInterval(
        estimate=(b - c) / n * scale,
        ci90=(ci90[0] * scale, ci90[1] * scale),
        ci95=(ci95[0] * scale, ci95[1] * scale),
        n=n,
        images_for=images_for,
    )


def bootstrap_paired_interval(
    estimate: float,
    resampled: np.ndarray,
    changed: int,
    n: int,
    per_image_range: float | None = 100.0,
) -> PairedInterval:
    """Paired difference of a metric that is not a mean of per-image bits (mAP, hmean,
    PSNR), from its paired image bootstrap, widened for the images that could change.

    resampled: metric(B) - metric(A) on each resample (one index matrix for both configs);
    changed: images whose per-image record differs between A and B (only they can move the
    difference); per_image_range: PER_IMAGE_RANGE of the metric, or a range from the data.

    The bootstrap replays only the changes it saw: none changed, it gives [0, 0]; a few
    changed with small effects, it gives a tiny interval, however large the changes it
    never saw. A kind of change absent from n images can still touch a share up to the
    Clopper-Pearson bound p0 = 1 - (alpha/2)^(1/n) of them (3.69 / n at 95%), each moving
    the metric by up to per_image_range / n. So each side of the percentile interval is
    combined in quadrature with per_image_range * p0: with no changed image the interval
    is +-range * p0, Tango's +-z^2 / (n + z^2) for top-1 within 4%; with many, the floor
    is small beside the bootstrap's spread (+-0.46 points at n = 800; 0.07 at 5,000).
    On paired bits it is Tango's width within a few percent, and covers as often.

    Measured against the alternative the design named, the Clopper-Pearson bound on the
    changed count itself (each side stretched by sqrt(p_hi(changed) / (changed / n))), on
    mAP pairs where 2-7% of images lose their detections (the runs of
    benchmarks/map_interval_coverage.py --calibration --n 30 100 300 --draws 300
    --resamples 200): the stretch said "no effect within +-0.5" in 1.3% of the n = 30
    runs with a true 1.5-point drop, and in 2.0% / 4.3% of the n = 30 / 100 runs with a
    true 0.5-point one (one changed image of small effect seen, the large ones not): at
    n = 30 no honest interval is that narrow. The quadrature
    floor never did, said "changes the result" in none of the runs with no effect, and in
    41% of the n = 300 runs with the 1.5-point drop (coverage 99-100%: conservative). The
    stretch remains only where no per-image range is known (per_image_range None), with
    +-inf when no image changed: nothing bounds the effect then.
    """
    if n <= 0 or not 0 <= changed <= n:
        raise ValueError(f"need 0 <= changed <= n, n > 0; got changed={changed}, n={n}")
    values = np.asarray(resampled, float)
    values = values[np.isfinite(values)] if changed else np.zeros(1)
    if len(values) == 0:
        nan = (math.nan, math.nan)
        return PairedInterval(float(estimate), nan, nan, n)
    cis = {conf: _widened(estimate, values, changed, n, conf, per_image_range)
           for conf in (0.90, 0.95)}  # fmt: skip
    spread = _spread(values, 0.95)

    def images_for(h: float) -> int | None:
        return _bootstrap_images_for(spread, h, changed, n, per_image_range)

    return PairedInterval(float(estimate), cis[0.90], cis[0.95], n, images_for)


# ---------------------------------------------------------------------- internals


def _unseen(n: float, conf: float) -> float:
    """Clopper-Pearson upper bound on a share never seen in n images: 1 - (alpha/2)^(1/n)."""
    return -math.expm1(math.log((1 - conf) / 2) / n)


def _spread(values: np.ndarray, conf: float) -> float:
    """Half the width of the percentile interval."""
    a = (1 - conf) / 2
    lo, hi = np.quantile(values, [a, 1 - a])
    return float(hi - lo) / 2


def _widened(est, values, changed, n, conf, per_image_range) -> tuple[float, float]:
    a = (1 - conf) / 2
    lo, hi = (float(q) for q in np.quantile(values, [a, 1 - a]))
    down, up = max(est - lo, 0.0), max(hi - est, 0.0)
    if per_image_range is not None:
        floor = per_image_range * _unseen(n, conf)
        return est - math.hypot(down, floor), est + math.hypot(up, floor)
    if changed == 0:
        return -math.inf, math.inf
    stretch = math.sqrt(clopper_pearson(changed, n, conf)[1] / (changed / n))
    return est - down * stretch, est + up * stretch


def _bootstrap_images_for(spread, h, changed, n, per_image_range) -> int | None:
    """n at which the widened 95% half-width would be h, at this run's share of changed
    images: the bootstrap's spread as 1/sqrt(n), the floor range * p0(n) as about 1/n."""
    if not h > 0:
        return None
    if per_image_range is None:
        if changed == 0:
            return None
        share = changed / n

        def half_at(m: float) -> float:
            p_hi = 1.0 if changed == n else clopper_pearson(share * m, m)[1]
            return spread * math.sqrt(n / m) * math.sqrt(p_hi / share)

        return smallest_n(half_at, h, n)

    def widened_at(m: float) -> float:
        return math.hypot(spread * math.sqrt(n / m), per_image_range * _unseen(m, 0.95))

    return smallest_n(widened_at, h, n)


def _n_needed(interval: PairedInterval, detectable: float, margin: float) -> int | None:
    if not math.isfinite(detectable):
        return None
    if detectable <= margin:
        return int(interval.n)
    if interval.images_for is not None:
        return interval.images_for(margin)
    return math.ceil(interval.n * (detectable / margin) ** 2)  # half-width ~ 1/sqrt(n)


def _inside(ci: tuple[float, float], margin: float) -> bool:
    return -margin < ci[0] and ci[1] < margin


def _pair(ci) -> tuple[float, float]:
    return float(ci[0]), float(ci[1])


def _digits(margin: float) -> int:
    """Decimals that resolve the margin: 1 for 0.5 points, 2 for 0.05 dB, 3 for 0.001."""
    return max(1, math.ceil(-math.log10(margin) - 1e-9))


def _about(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.2g}"


def _round_count(n: int) -> int:
    """Two significant digits: 2,384 -> 2,400 (it is an estimate)."""
    if n < 100:
        return int(n)
    p = 10 ** (len(str(int(n))) - 2)
    return int(math.floor(n / p + 0.5) * p)  # half up: 765 -> 770
