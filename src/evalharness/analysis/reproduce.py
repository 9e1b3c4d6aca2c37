"""Which configs could have produced a reported accuracy?"""

from __future__ import annotations

import pandas as pd


def configs_matching(summary: pd.DataFrame, target: float, factors: list[str]) -> pd.DataFrame:
    """Configs whose Wilson 95% interval contains `target` (points), closest first."""
    hit = summary[(summary.top1_lo <= target) & (target <= summary.top1_hi)].copy()
    hit["distance"] = (hit.top1 - target).abs()
    cols = ["config_id", *factors, "top1", "top1_lo", "top1_hi", "distance"]
    return hit.sort_values("distance", kind="stable")[cols].reset_index(drop=True)
