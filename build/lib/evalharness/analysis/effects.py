"""Factor effects over a sweep: marginal metric per level, two-way tables, variance shares."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalharness.analysis.results import RunResults
from evalharness.stats.paired import percentile_ci


def main_effects(res: RunResults, idx: np.ndarray) -> pd.DataFrame:
    """Mean metric of the configs at each level of each varying factor, with a paired CI.

    The CI resamples images (the configs are fixed): on each resample, the mean over the
    level's configs of their metric; for accuracy this is the bootstrap of the per-image
    share of that level's configs that got the image right.
    """
    m = res.metric
    cache = {cid: res.values(cid, idx) for cid in res.summary.config_id}
    rows = []
    for f in res.varying_factors():
        for level, group in res.summary.groupby(f, sort=True):
            v = np.mean([cache[c] for c in group.config_id], axis=0)
            lo, hi = percentile_ci(v[1:])
            rows.append(
                {
                    "factor": f,
                    "level": level,
                    "n_configs": len(group),
                    m: v[0],
                    f"{m}_lo": lo,
                    f"{m}_hi": hi,
                }  # fmt: skip
            )
    return pd.DataFrame(rows)


def variance_shares(summary: pd.DataFrame, factors: list[str], metric: str = "top1"):
    """Share of the between-config variance of the metric each factor's main effect explains.

    Sum of squares of the level means (balanced-ANOVA style); what the main effects leave
    is reported as `interactions` so the shares add up to 1.
    """
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
    """Mean metric over the configs at each (f1 level, f2 level) cell."""
    return summary.pivot_table(index=f1, columns=f2, values=metric, aggfunc="mean")
