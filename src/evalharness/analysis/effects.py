"""Factor effects over a sweep: marginal accuracy per level, two-way tables, variance shares."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalharness.analysis.paired import bootstrap_ci
from evalharness.analysis.results import RunResults


def main_effects(res: RunResults, idx: np.ndarray) -> pd.DataFrame:
    """Mean accuracy of the configs at each level of each varying factor, with a paired CI.

    The CI resamples images (the configs are fixed): per image, the share of that level's
    configs that got it right; its bootstrap mean is the level's marginal accuracy.
    """
    rows = []
    for f in res.varying_factors():
        for level, group in res.summary.groupby(f, sort=True):
            per_image = res.correct.loc[group.config_id].to_numpy(float).mean(axis=0)
            lo, hi = bootstrap_ci(per_image, idx)
            rows.append(
                dict(
                    factor=f,
                    level=level,
                    n_configs=len(group),
                    top1=per_image.mean() * 100,
                    top1_lo=lo * 100,
                    top1_hi=hi * 100,
                )
            )
    return pd.DataFrame(rows)


def variance_shares(summary: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    """Share of the between-config variance of top-1 each factor's main effect explains.

    Sum of squares of the level means (balanced-ANOVA style); what the main effects leave
    is reported as `interactions` so the shares add up to 1.
    """
    acc = summary.top1.to_numpy(float)
    total = ((acc - acc.mean()) ** 2).sum()
    rows = []
    for f in factors:
        means = summary.groupby(f).top1.transform("mean").to_numpy(float)
        ss = ((means - acc.mean()) ** 2).sum()
        rows.append(dict(factor=f, share=ss / total if total > 0 else 0.0))
    explained = sum(r["share"] for r in rows)
    rows.append(dict(factor="interactions", share=max(0.0, 1 - explained) if total > 0 else 0.0))
    return pd.DataFrame(rows).sort_values("share", ascending=False, kind="stable")


def interaction_table(summary: pd.DataFrame, f1: str, f2: str) -> pd.DataFrame:
    """Mean top-1 over the configs at each (f1 level, f2 level) cell."""
    return summary.pivot_table(index=f1, columns=f2, values="top1", aggfunc="mean")
