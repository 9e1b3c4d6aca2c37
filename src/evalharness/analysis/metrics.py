"""Per-config accuracy from the predictions table: the numbers in summary.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalharness.analysis.stats import wilson_interval


def summarize(predictions: pd.DataFrame, timing: dict[str, float]) -> pd.DataFrame:
    """One row per config_id: n, n_errors, top1 with its Wilson 95% interval, top5, images/s.

    A sample that failed a stage counts as wrong (and in n_errors): dropping it would make
    configs with different failures incomparable and flatter the broken one.
    """
    g = predictions.groupby("config_id", sort=False)
    out = pd.DataFrame(
        {
            "n": g.size(),
            "n_errors": g["error_stage"].apply(lambda s: int(s.notna().sum())),
            "n_correct": g["correct1"].sum().astype(int),
            "top5": g["correct5"].mean() * 100,
        }
    )
    lo, hi = wilson_interval(out["n_correct"].to_numpy(), out["n"].to_numpy())
    out.insert(2, "top1", out["n_correct"] / out["n"] * 100)
    out.insert(3, "top1_lo", lo * 100)
    out.insert(4, "top1_hi", hi * 100)
    secs = pd.Series(timing).reindex(out.index)
    out["images_per_s"] = np.where(secs > 0, out["n"] / secs, np.nan)
    return out.reset_index()
