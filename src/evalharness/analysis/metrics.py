"""Per-config accuracy from the predictions table: the numbers in summary.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalharness.analysis.stats import wilson_interval


def summarize(counts: pd.DataFrame, timing: dict[str, float]) -> pd.DataFrame:
    """One row per config_id: n, n_errors, top1 with its Wilson 95% interval, top5, images/s.

    `counts` holds per config n, n_errors, n_correct, n_correct5. A sample that failed a stage
    counts as wrong (and in n_errors): dropping it would make configs with different failures
    incomparable and flatter the broken one.
    """
    out = counts[["n", "n_errors", "n_correct"]].copy()
    out["top5"] = counts["n_correct5"] / counts["n"] * 100
    lo, hi = wilson_interval(out["n_correct"].to_numpy(), out["n"].to_numpy())
    out.insert(2, "top1", out["n_correct"] / out["n"] * 100)
    out.insert(3, "top1_lo", lo * 100)
    out.insert(4, "top1_hi", hi * 100)
    secs = pd.Series(timing).reindex(out.index)
    out["images_per_s"] = np.where(secs > 0, out["n"] / secs, np.nan)
    return out.rename_axis("config_id").reset_index()
