"""Which configs could have produced a reported figure?"""

from __future__ import annotations

import pandas as pd


def configs_matching(
    summary: pd.DataFrame, target: float, factors: list[str], metric: str = "top1"
) -> pd.DataFrame:
    """Configs whose 95% interval of `metric` contains `target`, closest first."""
    lo, hi = summary[f"{metric}_lo"], summary[f"{metric}_hi"]
    hit = summary[(lo <= target) & (target <= hi)].copy()
    hit["distance"] = (hit[metric] - target).abs()
    cols = ["config_id", *factors, metric, f"{metric}_lo", f"{metric}_hi", "distance"]
    return hit.sort_values("distance", kind="stable")[cols].reset_index(drop=True)
