"""Reading summary.csv as it was written: its factor columns and their values as strings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from evalharness.registry import FACTORS


def summary_factors(table: pd.DataFrame) -> list[str]:
    """The factor columns of a summary or configs table: those between `dataset` and
    `reference` (FACTORS, then any swept settings such as limit_side_len)."""
    cols = list(table.columns)
    if "dataset" in cols and "reference" in cols:
        return cols[cols.index("dataset") + 1 : cols.index("reference")]
    return [c for c in FACTORS if c in cols]


def read_summary(path: Path) -> pd.DataFrame:
    """summary.csv with its factor columns as the strings written: a setting's value "None"
    or "-" stays a value (pandas would read "None" as missing and no row would match)."""
    table = pd.read_csv(path)
    factors = summary_factors(table)
    if factors:
        table[factors] = pd.read_csv(path, usecols=factors, dtype=str, keep_default_na=False)
    return table
