"""Coverage of mAP intervals and verdict rates, measured against a population whose mAP is known.

A population of 6,000 simulated images holds per-image COCO match records, stored exactly
as the detection task stores them (one row per image: scores, labels, tp/ignored bit
masks, gt_match, gt_labels, gt_crowd). Config A; config B, every image degraded a little
(boxes shifted, scores noisier, some objects lost; population mAP about 38 vs 34); config
S, A with every detection lost on 2% of the images (few images change). The truth is the
project's own accumulation on all 6,000 images (Detection.records and
tasks/detection/metric.py's ap_per_threshold, imported, not copied). Each draw takes n
images without replacement and bootstraps them with one resample matrix for every config
(so differences are paired); the table gives how often each interval holds the truth:

- one config's mAP (A and B, 2 x draws): the percentile interval (what the summary printed
  before) and stats/map_interval.py's debiased_interval;
- the paired difference B - A and S - A: percentile, and widened for the images that could
  change (stats/verdict.py, bootstrap_paired_interval).

--calibration instead measures the verdicts (stats/verdict.py) on pairs of configs whose
population difference is 0, the margin (0.5 points) and 3x the margin: A with every
detection lost on one set of images against A with them lost on another, the two sets
sized to give that difference (few images change, the case where the bootstrap alone
collapses).

    python benchmarks/map_interval_coverage.py                 # n = 100, 300; 200 draws
    python benchmarks/map_interval_coverage.py --world coco80  # 80 classes, 7 objects
    python benchmarks/map_interval_coverage.py --calibration --n 30 300 --draws 200

Prints one table and the seconds it took. Measured (2 shared cores; 200 draws, 300
resamples, 50 pairs of halves; w20 in 175-217 s, coco80 in 304 s, 798 s under a load of 12):

                                        w20 n=100  n=300   coco80 n=100  n=300
    objects per class (present)          20.1      60.3        8.7      26.0
    bias of sample mAP, points          +2.35     +1.18      +3.81     +1.83
    one config mAP, percentile           0.632     0.620      0.150     0.185
    one config mAP, debiased_interval    0.955     0.958      0.800     0.978
    one config mAP50, percentile         0.818     0.830      0.458     0.580
    one config mAP50, debiased_interval  0.958     0.940      0.830     0.973
    paired B - A, percentile             0.955     0.935      0.945     0.925
    paired B - A, widened                1.000     1.000      1.000     0.995
    paired S - A, percentile             0.755     0.900      0.725     0.845
    paired S - A, widened                1.000     1.000      1.000     1.000

--calibration --n 30 100 300 --draws 300 --resamples 200 (316 s): truth 0 / -0.501 /
-1.503 points; "changes the result" 0.000 / 0.000-0.007 / 0.000-0.413, "no effect" 0.000
in every cell (n <= 300 cannot show +-0.5 for mAP), "inconclusive" 1.000 at n = 30.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalharness.stats.map_interval import (
    debiased_interval,
    half_sample_indices,
    objects_per_class,
)
from evalharness.stats.verdict import (
    CHANGES,
    INCONCLUSIVE,
    NO_EFFECT,
    bootstrap_paired_interval,
    verdict,
)
from evalharness.tasks.detection.coco import IOU_THRESHOLDS
from evalharness.tasks.detection.metric import ap_per_threshold
from evalharness.tasks.detection.task import Detection

POPULATION = 6000
TASK = Detection()
WORLDS = {  # n_classes, objects per image, seed
    "w20": (20, 4.0, 0),  # ~20 counted objects per class in 100 images
    "coco80": (80, 7.0, 3),  # COCO's classes and density: ~9 per class in 100 images
}
LEVEL = 0.95
MARGIN = 0.5  # findings.margin for mAP, points
LOST = ("scores", "labels", "tp", "ignored", "gt_match")  # columns emptied when detections go


@dataclass(frozen=True)
class Shift:
    """How a config departs from the population's latent detector (A has none)."""

    iou: float = 0.0  # mean change of every detection's IoU
    iou_noise: float = 0.0
    logit_noise: float = 0.0  # extra noise on the score's logit
    lose: float = 0.0  # share of objects a detection is lost for


def _class_share(n_classes: int) -> np.ndarray:
    """Zipf-like class frequencies, as COCO's person-heavy mix."""
    freq = 1.0 / np.arange(1, n_classes + 1) ** 0.7
    return freq / freq.sum()


def _objects(rng: np.random.Generator, n_images: int, n_classes: int, per_image: float):
    """Latent objects: image, class, difficulty u in [0, 1) (small, occluded objects are
    hard)."""
    image = np.repeat(np.arange(n_images), rng.poisson(per_image, n_images))
    label = rng.choice(n_classes, len(image), p=_class_share(n_classes))
    return pd.DataFrame(dict(image=image, label=label, u=rng.random(len(image))))


def _detections(rng: np.random.Generator, obj: pd.DataFrame, n_images: int, k: int, s: Shift):
    """One config's detections: a first hit on most objects, duplicates, wrong-class hits,
    background false positives (classes as frequent as the objects': a detector fires
    where it was trained most); each with an IoU to its object (0 for background)."""
    n = len(obj)
    u = obj.u.to_numpy()
    found = rng.random(n) < (0.95 - 0.45 * u) * (1 - s.lose)
    iou = 0.93 - 0.3 * u + rng.normal(0, 0.06, n) + s.iou + rng.normal(0, s.iou_noise, n)
    logit = 2.5 - 4.0 * u + rng.normal(0, 1.0, n) + rng.normal(0, s.logit_noise, n)
    dup = found & (rng.random(n) < 0.25)
    wrong = found & (rng.random(n) < 0.06)
    n_bg = rng.poisson(2.5, n_images)
    parts = [
        (np.nonzero(found)[0], iou[found], logit[found], obj.label.to_numpy()[found]),
        (np.nonzero(dup)[0], iou[dup] - rng.uniform(0.05, 0.35, dup.sum()),
         logit[dup] - rng.uniform(0.5, 3.0, dup.sum()), obj.label.to_numpy()[dup]),
        (np.nonzero(wrong)[0], np.zeros(wrong.sum()), logit[wrong] - 2.0,
         rng.choice(k, wrong.sum(), p=_class_share(k))),
    ]  # fmt: skip
    owner = np.concatenate([p[0] for p in parts])
    det = pd.DataFrame(dict(
        obj=owner, image=obj.image.to_numpy()[owner],
        iou=np.concatenate([p[1] for p in parts]), logit=np.concatenate([p[2] for p in parts]),
        label=np.concatenate([p[3] for p in parts]),
    ))  # fmt: skip
    det.loc[det.label.to_numpy() != obj.label.to_numpy()[det.obj], "obj"] = -1
    bg = pd.DataFrame(dict(obj=-1, image=np.repeat(np.arange(n_images), n_bg), iou=0.0,
                           logit=rng.normal(-2.0, 1.3, n_bg.sum()),
                           label=rng.choice(k, n_bg.sum(), p=_class_share(k))))  # fmt: skip
    det = pd.concat([det, bg], ignore_index=True)
    det["score"] = (1 / (1 + np.exp(-det.logit))).astype(np.float32)
    return det[det.score >= 0.01].reset_index(drop=True)


def _match_bits(det: pd.DataFrame) -> np.ndarray:
    """COCO's greedy matching with one candidate object per detection: at each IoU
    threshold the highest-scoring detection of an object with IoU >= t is its true
    positive, every other detection a false positive there."""
    order = np.lexsort((-det.score.to_numpy(), det.obj.to_numpy()))
    obj, iou = det.obj.to_numpy()[order], det.iou.to_numpy()[order]
    bits = np.zeros(len(det), np.int64)
    for t, thr in enumerate(IOU_THRESHOLDS):
        ok = np.nonzero((obj >= 0) & (iou >= thr - 1e-9))[0]
        _, first = np.unique(obj[ok], return_index=True)
        bits[order[ok[first]]] |= 1 << t
    return bits


def _rows(det: pd.DataFrame, obj: pd.DataFrame, n_images: int) -> pd.DataFrame:
    """Per-image rows as the detection task stores them (detections by descending score)."""
    det = det.assign(tp=_match_bits(det))
    det = det.sort_values(["image", "score"], ascending=[True, False], kind="stable")
    rank = obj.groupby("image").cumcount().to_numpy()  # the object's index in its image
    det["gt_match"] = np.where((det.tp & 1) > 0, rank[det.obj.clip(lower=0)], -1)
    cuts = np.searchsorted(det.image.to_numpy(), np.arange(1, n_images))
    gcuts = np.searchsorted(obj.image.to_numpy(), np.arange(1, n_images))

    def split(values: np.ndarray, at: np.ndarray) -> list[list]:
        return [part.tolist() for part in np.split(values, at)]

    labels = split(obj.label.to_numpy(), gcuts)
    return pd.DataFrame(dict(
        sample_index=np.arange(n_images),
        scores=split(det.score.to_numpy(np.float32), cuts),
        labels=split(det.label.to_numpy(), cuts),
        tp=split(det.tp.to_numpy(), cuts),
        ignored=split(np.zeros(len(det), np.int64), cuts),
        gt_match=split(det.gt_match.to_numpy(), cuts),
        gt_labels=labels,
        gt_crowd=[[False] * len(g) for g in labels],
    ))  # fmt: skip


def population(world: str = "w20", sparse_share: float = 0.02) -> dict[str, pd.DataFrame]:
    """Stored rows of configs A, B and S on one population of simulated images."""
    n_classes, per_image, seed = WORLDS[world]
    rng = np.random.default_rng(seed)
    obj = _objects(rng, POPULATION, n_classes, per_image)
    state = rng.bit_generator.state
    det_a = _detections(rng, obj, POPULATION, n_classes, Shift())
    rng.bit_generator.state = state  # B departs from the same latent draws as A
    det_b = _detections(rng, obj, POPULATION, n_classes, Shift(-0.02, 0.02, 0.6, 0.03))
    rows_a, rows_b = _rows(det_a, obj, POPULATION), _rows(det_b, obj, POPULATION)
    return dict(A=rows_a, B=rows_b, S=lose(rows_a, rng.random(POPULATION) < sparse_share))


def lose(rows: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """The rows with every detection of the masked images removed (a broken decode, say)."""
    out = rows.copy()
    for col in LOST:
        out[col] = [[] if x else v for x, v in zip(mask, rows[col], strict=True)]
    return out


def changed(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Per image: do the two configs' records differ (only such images move a difference)."""
    cols = ("scores", "labels", "tp", "ignored")
    return np.array([any(a[c].iat[i] != b[c].iat[i] for c in cols) for i in range(len(a))])


def ap_values(rows: pd.DataFrame, idx: np.ndarray) -> np.ndarray:
    """(rows of idx, 2): mAP and mAP50 in points, by the project's accumulation."""
    ap = ap_per_threshold(TASK.records(rows, None).acc, idx) * 100
    return np.stack([ap.mean(axis=1), ap[:, 0]], axis=1)


def truths(rows: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    ident = np.arange(POPULATION)[None]
    return {k: ap_values(r, ident)[0] for k, r in rows.items()}


def _percentile(values: np.ndarray) -> tuple[float, float]:
    a = (1 - LEVEL) / 2
    return tuple(np.quantile(values[np.isfinite(values)], [a, 1 - a]))


class Tally:
    """Hits per row label and n; means of recorded figures."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[int, list[float]]] = {}

    def add(self, label: str, n: int, value: float) -> None:
        self.rows.setdefault(label, {}).setdefault(n, []).append(float(value))

    def table(self, ns: list[int]) -> str:
        head = f"{'':44s}" + "".join(f"{f'n = {n}':>12s}" for n in ns)
        lines = [head]
        for label, by_n in self.rows.items():
            cells = "".join(f"{np.mean(by_n.get(n, [np.nan])):12.3f}" for n in ns)
            lines.append(f"{label:44s}{cells}")
        return "\n".join(lines)


def coverage(world: str, ns: list[int], draws: int, resamples: int, pairs: int, seed: int):
    """The coverage table: one config's mAP and mAP50, and the paired differences."""
    rows = population(world)
    truth = truths(rows)
    moved = {k: changed(rows["A"], rows[k]) for k in "BS"}
    rng = np.random.default_rng(seed)
    tally = Tally()
    for n in ns:
        halves = half_sample_indices(n, pairs, seed)
        for _ in range(draws):
            sel = np.sort(rng.choice(POPULATION, n, replace=False))
            idx = np.vstack([np.arange(n), rng.integers(0, n, (resamples, n))])
            sample = {k: r.iloc[sel].reset_index(drop=True) for k, r in rows.items()}
            vals = {k: ap_values(s, idx) for k, s in sample.items()}
            for k in "AB":
                _one_config(tally, n, vals[k], ap_values(sample[k], halves), truth[k])
            labels = np.concatenate([np.asarray(g, int) for g in sample["A"].gt_labels])
            tally.add("  counted objects per class (present)", n,
                      objects_per_class(np.bincount(labels)))  # fmt: skip
            for k in "BS":
                _paired(tally, n, k, vals[k][:, 0] - vals["A"][:, 0],
                        truth[k][0] - truth["A"][0], int(moved[k][sel].sum()))  # fmt: skip
    head = (f"world {world}: {POPULATION:,} images, {WORLDS[world][0]} classes, "
            f"{WORLDS[world][1]} objects an image; population mAP "
            + ", ".join(f"{k} {v[0]:.2f}" for k, v in truth.items()))  # fmt: skip
    return head, tally.table(ns)


def _one_config(tally: Tally, n: int, vals: np.ndarray, halves: np.ndarray, truth) -> None:
    for j, name in enumerate(("mAP", "mAP50")):
        point, boot = vals[0, j], vals[1:, j]
        lo, hi = _percentile(boot)
        tally.add(f"one config {name}: percentile", n, lo <= truth[j] <= hi)
        iv = debiased_interval(point, boot, halves[:, j], n, LEVEL)
        tally.add(f"one config {name}: debiased (map_interval)", n, iv.lo <= truth[j] <= iv.hi)
        if j == 0:
            tally.add("  mean bias of sample mAP, points", n, point - truth[j])
            tally.add("  bootstrap's bias estimate, points", n, np.nanmean(boot) - point)
            tally.add("  half-sample bias estimate, points", n, iv.bias)
            tally.add("  mean width: percentile", n, hi - lo)
            tally.add("  mean width: debiased", n, iv.hi - iv.lo)


def _paired(tally: Tally, n: int, k: str, diff: np.ndarray, truth: float, moved: int) -> None:
    lo, hi = _percentile(diff[1:])
    tally.add(f"paired {k} - A mAP: percentile", n, lo <= truth <= hi)
    iv = bootstrap_paired_interval(diff[0], diff[1:], moved, n)
    tally.add(f"paired {k} - A mAP: widened (verdict)", n, iv.ci95[0] <= truth <= iv.ci95[1])
    tally.add(f"  images changed, {k} vs A (mean of n)", n, moved)


# ---------------------------------------------------------------------- verdict rates


@dataclass(frozen=True)
class CalibrationPair:
    x: pd.DataFrame
    y: pd.DataFrame
    truth: float  # population mAP(y) - mAP(x), points
    moved: np.ndarray  # images whose records differ


def calibration_pair(rows_a: pd.DataFrame, target: float, base: float = 0.01, seed: int = 0):
    """Two configs from A: detections lost on a base share of images in X, and on as many
    other images in Y as make mAP(Y) - mAP(X) = -target. For target 0 the closest; for a
    target > 0 the first count reaching it, so |truth| >= target (a claim of "no effect
    within target" is then always wrong)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(POPULATION)
    k1 = int(base * POPULATION)
    x = lose(rows_a, np.isin(np.arange(POPULATION), order[:k1]))
    x_map = ap_values(x, np.arange(POPULATION)[None])[0, 0]
    others = order[k1:]

    def diff(k2: int) -> float:
        y = lose(rows_a, np.isin(np.arange(POPULATION), others[:k2]))
        return ap_values(y, np.arange(POPULATION)[None])[0, 0] - x_map

    lo, hi = 0, len(others)
    while hi - lo > 1:  # mAP falls as more images lose their detections
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if diff(mid) > -target else (lo, mid)
    k2 = hi if target > 0 else min((lo, hi), key=lambda k: abs(diff(k)))
    ymask = np.isin(np.arange(POPULATION), others[:k2])
    y = lose(rows_a, ymask)
    moved = ymask | np.isin(np.arange(POPULATION), order[:k1])
    return CalibrationPair(x, y, diff(k2), moved)


def verdict_rates(pair: CalibrationPair, n: int, runs: int, resamples: int, seed: int):
    """Share of runs (n images each) whose verdict is each word, margin 0.5 points."""
    rng = np.random.default_rng(seed)
    words = []
    for _ in range(runs):
        sel = np.sort(rng.choice(POPULATION, n, replace=False))
        idx = np.vstack([np.arange(n), rng.integers(0, n, (resamples, n))])
        vx = ap_values(pair.x.iloc[sel].reset_index(drop=True), idx)[:, 0]
        vy = ap_values(pair.y.iloc[sel].reset_index(drop=True), idx)[:, 0]
        d = vy - vx
        iv = bootstrap_paired_interval(d[0], d[1:], int(pair.moved[sel].sum()), n)
        words.append(verdict(iv, MARGIN, "mAP points").word)
    return {w: float(np.mean([x == w for x in words])) for w in (CHANGES, NO_EFFECT, INCONCLUSIVE)}


def calibration(world: str, ns: list[int], runs: int, resamples: int, seed: int) -> str:
    rows = population(world)
    lines = [f"{'truth':>24s} {'n':>6s} {CHANGES:>20s} {NO_EFFECT:>10s} {INCONCLUSIVE:>13s}"]
    for mult in (0, 1, 3):
        pair = calibration_pair(rows["A"], mult * MARGIN, seed=seed)
        for n in ns:
            r = verdict_rates(pair, n, runs, resamples, seed + n)
            lines.append(f"{mult}m ({pair.truth:+.3f} points){n:>7d} {r[CHANGES]:20.3f} "
                         f"{r[NO_EFFECT]:10.3f} {r[INCONCLUSIVE]:13.3f}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", choices=sorted(WORLDS), default="w20")
    ap.add_argument("--n", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--resamples", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=50, help="pairs of complementary halves")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--calibration", action="store_true", help="verdict rates instead")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.calibration:
        print(calibration(args.world, args.n, args.draws, args.resamples, args.seed))
    else:
        head, table = coverage(args.world, args.n, args.draws, args.resamples, args.pairs,
                               args.seed)  # fmt: skip
        print(head)
        print(f"coverage of the truth by 95% intervals, {args.draws} draws, "
              f"{args.resamples} resamples, {args.pairs} pairs of halves")  # fmt: skip
        print(table)
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
