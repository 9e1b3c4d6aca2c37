"""Factor effects over a sweep, anchored at the model card's reference config.

An effect is a contrast against the reference: the config that changes only that factor,
everything else as the reference. When the sweep lacks it, it is evaluated on demand (a few,
bounded as the Shapley split is); only past that bound does a level fall back to the mean
paired difference over the matched config pairs the sweep has, labelled as such. Means of
the metric over all configs at a level (`marginal_means`) average each level over the other
mistakes in the sweep, so on a sweep of mistakes the reference level can look worst: they
are kept, in a table named for what they are, never as "the effect".

Variance shares (balanced-ANOVA sums of squares of the level means) are defined only for a
full product of the listed levels with no cell missing; elsewhere there are none, and the
reason is said.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evalharness.analysis.contrast import Contrast, contrast, matched_pairs_interval
from evalharness.analysis.ondemand import ConfigSource
from evalharness.analysis.results import RunResults
from evalharness.stats.paired import percentile_ci
from evalharness.stats.verdict import CHANGES, INCONCLUSIVE, NO_EFFECT, Verdict, verdict

SINGLE = "single change"
ON_DEMAND = "single change, evaluated on demand"


@dataclass
class LevelEffect:
    factor: str
    level: str
    verdict: Verdict
    how: str  # SINGLE, ON_DEMAND, or "mean of k matched pairs"
    contrast: Contrast | None = None  # for a single change


@dataclass
class FactorEffect:
    """One factor's levels against the reference level, and the factor's verdict."""

    factor: str
    reference: str
    levels: list[LevelEffect] = field(default_factory=list)
    missing: int = 0  # levels with neither a single change nor a matched pair

    @property
    def word(self) -> str:
        words = {e.verdict.word for e in self.levels}
        if CHANGES in words:
            return CHANGES
        if words == {NO_EFFECT}:
            return NO_EFFECT
        return INCONCLUSIVE

    def headline(self) -> LevelEffect | None:
        """The level the factor's line names: the largest change, the widest interval when
        inconclusive, the widest 90% interval when every level is within the margin."""
        if not self.levels:
            return None
        word = self.word
        same = [e for e in self.levels if e.verdict.word == word]
        if word == CHANGES:
            return max(same, key=lambda e: abs(e.verdict.estimate))
        return max(same, key=lambda e: e.verdict.detectable)


def level_configs(res: RunResults, ref: dict[str, str], factor: str) -> list[tuple[str, dict]]:
    """The non-reference levels of `factor` in the run, with their single-change config."""
    levels = sorted(res.summary[factor].astype(str).unique())
    return [(lv, {**ref, factor: lv}) for lv in levels if lv != ref[factor]]


def missing_single_changes(res: RunResults, ref: dict[str, str]) -> list[dict[str, str]]:
    return [
        config
        for f in res.varying_factors()
        for _, config in level_configs(res, ref, f)
        if res.find(config) is None
    ]


def with_single_changes(
    res: RunResults, ref: dict[str, str], configs: ConfigSource, max_on_demand: int
) -> RunResults:
    """The run plus the single changes it lacks, evaluated on demand when they are few (and
    can run at all); more than `max_on_demand` and none is evaluated."""
    missing = missing_single_changes(res, ref)
    runnable = [c for c in missing if configs.problem(c) is None]
    if not runnable or len(runnable) > max_on_demand:
        return res
    extra = configs.evaluate(runnable)
    return res if extra is None else res.merged(extra)


def factor_effects(
    res: RunResults,
    ref: dict[str, str],
    idx: np.ndarray,
    m: float,
    values,
    evaluated=(),
    why_missing=None,
) -> list[FactorEffect]:
    """Every varying factor's levels against the reference, judged (module docstring).
    `evaluated`: config ids that came from on-demand runs (for the `how` column);
    `why_missing(config)`: why a single change cannot run at all (None: it only was not
    evaluated), said beside a matched-pairs fallback."""
    ref_id = res.find(ref)
    if values is None:
        cache: dict[str, np.ndarray] = {}

        def values(cid: str) -> np.ndarray:
            if cid not in cache:
                cache[cid] = res.values(cid, idx)
            return cache[cid]

    out = []
    for factor in res.varying_factors():
        effect = FactorEffect(factor, ref[factor])
        for level, config in level_configs(res, ref, factor):
            cid = res.find(config)
            if cid is not None and ref_id is not None:
                c = contrast(res, ref_id, cid, idx, m, values)
                how = ON_DEMAND if cid in evaluated else SINGLE
                effect.levels.append(LevelEffect(factor, level, c.judged, how, c))
                continue
            pairs = matched_pairs(res, ref, factor, level)
            if not pairs:
                effect.missing += 1
                continue
            diffs = np.mean([values(b) - values(a) for a, b in pairs], axis=0)
            changed = int(np.any([res.scores(a) != res.scores(b) for a, b in pairs], axis=0).sum())
            interval = matched_pairs_interval(diffs, changed, len(res.sample_ids), res.metric)
            why = why_missing(config) if why_missing is not None else None
            lacks = (
                f"the single change cannot run: {why}"
                if why
                else ("the sweep lacks the single change")
            )
            how = f"mean of {len(pairs)} matched pair(s): {lacks}"
            effect.levels.append(LevelEffect(factor, level, verdict(interval, m, res.task.unit),
                                             how))  # fmt: skip
        out.append(effect)
    return out


def matched_pairs(res: RunResults, ref: dict[str, str], factor: str, level: str):
    """(config at the reference level, config at `level`) pairs equal in every other factor."""
    others = [f for f in res.factors if f != factor]
    s = res.summary.assign(_level=res.summary[factor].astype(str))
    at_ref = {tuple(r[others]): r.config_id for _, r in s[s._level == ref[factor]].iterrows()}
    return [
        (at_ref[key], row.config_id)
        for _, row in s[s._level == level].iterrows()
        if (key := tuple(row[others])) in at_ref
    ]


def effects_table(effects: list[FactorEffect], metric: str) -> pd.DataFrame:
    """explain's effects.csv: one row per factor level against the reference. `delta` and
    its interval are on the images both configs scored (what the verdict reads);
    `delta_all` = delta + errors_part, the whole gap."""
    rows = []
    for fe in effects:
        for e in fe.levels:
            v = e.verdict
            split = e.contrast.errors if e.contrast is not None else None
            pair = e.contrast.pair if e.contrast is not None else None
            total = e.contrast.verdict if e.contrast is not None else v
            rows.append({
                "factor": fe.factor, "level": e.level, "reference": fe.reference,
                "delta_all": total.estimate, "delta": v.estimate, "lo": v.ci95[0],
                "hi": v.ci95[1],
                "lo90": v.ci90[0], "hi90": v.ci90[1], "verdict": v.word,
                "factor_verdict": fe.word, "margin": v.margin, "detectable": v.detectable,
                "n_needed": v.n_needed, "how": e.how,
                "images_worse": pair.right_to_wrong if pair else np.nan,
                "images_better": pair.wrong_to_right if pair else np.nan,
                "error_images": split.images if split else 0,
                "errors_part": split.errors if split else 0.0,

                "text": v.text(),
            })  # fmt: skip
    return pd.DataFrame(rows)


def marginal_means(res: RunResults, idx: np.ndarray) -> pd.DataFrame:
    """Mean metric of the configs at each level of each varying factor, with a paired CI.

    Not an effect: each level is averaged over whatever else the sweep varied. The CI
    resamples images (the configs are fixed): on each resample, the mean over the level's
    configs of their metric.
    """
    m = res.metric
    cache = {cid: res.values(cid, idx) for cid in res.summary.config_id}
    rows = []
    for f in res.varying_factors():
        for level, group in res.summary.groupby(f, sort=True):
            v = np.mean([cache[c] for c in group.config_id], axis=0)
            lo, hi = percentile_ci(v[1:])
            rows.append({"factor": f, "level": level, "n_configs": len(group), m: v[0],
                         f"{m}_lo": lo, f"{m}_hi": hi})  # fmt: skip
    return pd.DataFrame(rows)


def full_product(summary: pd.DataFrame, factors: list[str]) -> tuple[bool, str]:
    """Whether the configs are the full product of the listed levels; else why not."""
    if not factors:
        return False, "no factor varies"
    levels = [summary[f].astype(str).unique() for f in factors]
    cells = int(np.prod([len(v) for v in levels]))
    present = set(map(tuple, summary[factors].astype(str).to_numpy()))
    have = sum(1 for combo in itertools.product(*levels) if combo in present)
    if have == cells and len(present) == len(summary):
        return True, ""
    return False, (
        f"the configs are not the full product of the factors' levels ({have} of {cells} "
        "cells: exclusions, one-at-a-time, skipped combinations or a reference outside "
        "the sweep)"
    )


def variance_shares(summary: pd.DataFrame, factors: list[str], metric: str = "top1"):
    """Share of the between-config variance of the metric each factor's main effect explains,
    and `interactions` (what the main effects leave), for a full product; defined only
    there (see full_product), so callers check first."""
    acc = summary[metric].to_numpy(float)
    total = ((acc - acc.mean()) ** 2).sum()
    rows = []
    for f in factors:
        means = summary.groupby(f)[metric].transform("mean").to_numpy(float)
        ss = ((means - acc.mean()) ** 2).sum()
        rows.append(dict(factor=f, share=ss / total if total > 0 else 0.0))
    explained = sum(r["share"] for r in rows)
    rows.append(dict(factor="interactions", share=max(0.0, 1 - explained) if total > 0 else 0.0))
    return pd.DataFrame(rows).sort_values("share", ascending=False, kind="stable")


def interaction_table(summary: pd.DataFrame, f1: str, f2: str, metric: str = "top1"):
    """Mean metric over the configs at each (f1 level, f2 level) cell (marginal means)."""
    return summary.pivot_table(index=f1, columns=f2, values=metric, aggfunc="mean")
