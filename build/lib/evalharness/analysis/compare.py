"""Results against results, with honest deltas: the library behind `evalharness compare`.

A and B are run dirs or CSVs: a summary.csv, or any CSV with factor columns and an accuracy
column (`top1`, `accuracy` or `acc`; `n` optional) -- a number someone reported. Rows are
aligned on the factor columns both sides have. The delta of top-1 (and top-5 where both have
it) gets a 95% interval:
- paired, when both sides are run dirs with predictions for the same samples: paired
  bootstrap over images, and an exact McNemar p-value;
- independent, when both have n: Newcombe's hybrid score interval (from the Wilson intervals);
- against a reported figure without n: the measured side's Wilson interval, the figure exact.
Changes whose interval excludes 0 are flagged. `--fail-on-drop X` exits 1 when any config's
top-1 fell by more than X points: a regression gate for CI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.analysis.results import RunResults
from evalharness.rundir.summary import summary_factors
from evalharness.stats.intervals import wilson_interval
from evalharness.stats.paired import bootstrap_indices, compare_values

ACCURACY_NAMES = ("top1", "accuracy", "acc", "top1_acc")
OTHER_METRICS = ("mAP", "hmean")


@dataclass
class Side:
    label: str
    table: pd.DataFrame  # factor columns + the metric (+ n, top5, config_id, _lo/_hi)
    results: RunResults | None  # per-image records, when the side is a run dir
    metric: str


def load_side(path: Path) -> Side:
    path = Path(path)
    results = None
    if path.is_dir():
        if (path / "predictions.parquet").exists():
            results = RunResults.load(path)
        path = path / "summary.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)  # a factor value "None" stays
    metric = results.metric if results is not None else None
    if metric is None:
        acc = next((c for c in ACCURACY_NAMES if c in table.columns), None)
        metric = "top1" if acc else next((c for c in OTHER_METRICS if c in table.columns), None)
        if metric is None:
            names = ", ".join(ACCURACY_NAMES + OTHER_METRICS)
            raise ValueError(f"{path}: no metric column (one of {names})")
        if acc:
            table = table.rename(columns={acc: "top1"})
    for col in (metric, "top5", "n", f"{metric}_lo", f"{metric}_hi"):
        table[col] = pd.to_numeric(table[col], errors="coerce") if col in table else np.nan
    if "config_id" not in table:
        table["config_id"] = None
    if metric == "top1" and table.top1.max() <= 1.0:  # a fraction, not percent
        table["top1"] *= 100
    return Side(str(path), table, results, metric)


def newcombe(p1: float, n1: float, p2: float, n2: float) -> tuple[float, float]:
    """95% CI of p2 - p1 (fractions) for independent samples (Newcombe 1998, method 10)."""
    l1, u1 = (float(v) for v in wilson_interval(p1 * n1, n1))
    l2, u2 = (float(v) for v in wilson_interval(p2 * n2, n2))
    d = p2 - p1
    return d - np.hypot(p2 - l2, u1 - p1), d + np.hypot(u2 - p2, p1 - l1)


def _paired(a: pd.Series, b: pd.Series, sa: Side, sb: Side, idx_cache: dict) -> dict | None:
    ra, rb = sa.results, sb.results
    if ra is None or rb is None or ra.sample_ids != rb.sample_ids:
        return None
    if a.config_id not in ra.records or b.config_id not in rb.records:
        return None
    n = len(ra.sample_ids)
    idx = idx_cache.setdefault(n, bootstrap_indices(n, 2000))
    r = compare_values(
        ra.values(a.config_id, idx), rb.values(b.config_id, idx),
        ra.scores(a.config_id), rb.scores(b.config_id), ra.sample_ids,
    )  # fmt: skip
    worse, better = ra.task.flip_names
    out = dict(delta=r.delta, lo=r.delta_lo, hi=r.delta_hi, method="paired bootstrap")
    out.update({"p_mcnemar": r.p_mcnemar, worse: r.right_to_wrong, better: r.wrong_to_right})
    return out


def _interval(a: pd.Series, b: pd.Series, sa: Side, sb: Side, idx_cache: dict) -> dict:
    m = sa.metric
    delta = b[m] - a[m]
    paired = _paired(a, b, sa, sb, idx_cache)
    if paired is not None:
        return paired
    na, nb = a.get("n", np.nan), b.get("n", np.nan)
    if m == "top1" and pd.notna(na) and pd.notna(nb):
        lo, hi = newcombe(a.top1 / 100, na, b.top1 / 100, nb)
        return dict(delta=delta, lo=lo * 100, hi=hi * 100, method="Newcombe (independent)")
    if m != "top1":  # a metric that is not a proportion: combine the two intervals
        half = [(s[f"{m}_hi"] - s[f"{m}_lo"]) / 2 for s in (a, b)]
        if all(pd.notna(h) for h in half):
            w = float(np.hypot(*half))
            return dict(delta=delta, lo=delta - w, hi=delta + w, method="independent (intervals)")
        return dict(delta=delta, lo=np.nan, hi=np.nan, method="no interval on either side")
    measured, n, sign = (a, na, -1) if pd.notna(na) else (b, nb, 1)
    if pd.isna(n):
        return dict(delta=delta, lo=np.nan, hi=np.nan, method="no n on either side")
    wl, wh = (float(v) * 100 for v in wilson_interval(measured.top1 / 100 * n, n))
    other = b.top1 if sign < 0 else a.top1
    lo, hi = sorted([sign * (wl - other), sign * (wh - other)])
    return dict(delta=delta, lo=lo, hi=hi, method="vs reported figure (Wilson)")


@dataclass
class Comparison:
    """Config by config: the aligned rows with each delta and its interval, and notes on
    rows only one side has."""

    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    metric: str = "top1"
    keys: list[str] = field(default_factory=list)  # the columns rows were aligned on

    def drops(self, threshold: float) -> pd.DataFrame:
        """Rows whose metric fell by more than `threshold` (the metric's unit)."""
        if self.table.empty:
            return self.table
        return self.table[self.table.delta < -threshold]


def compare(a_path: Path, b_path: Path) -> Comparison:
    sa, sb = load_side(a_path), load_side(b_path)
    if sa.metric != sb.metric:
        raise ValueError(f"A reports {sa.metric}, B reports {sb.metric}: nothing to compare")
    m = sa.metric
    factors = [f for f in summary_factors(sa.table) if f in summary_factors(sb.table)]
    keys = [f for f in ("model", "dataset", *factors) if f in sa.table and f in sb.table]
    if not keys:
        raise ValueError("A and B share no factor column to align on")
    merged = sa.table.merge(sb.table, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    notes = []
    for side, tag in (("left_only", "A"), ("right_only", "B")):
        for _, row in merged[merged._merge == side].iterrows():
            notes.append(f"only in {tag}: " + " ".join(f"{k}={row[k]}" for k in keys))
    rows, idx_cache = [], {}
    for _, row in merged[merged._merge == "both"].iterrows():
        a = _side_row(row, "_a")
        b = _side_row(row, "_b")
        out = {k: row[k] for k in keys}
        out.update({f"{m}_a": a[m], f"{m}_b": b[m]}, **_interval(a, b, sa, sb, idx_cache))
        if pd.notna(a.get("top5")) and pd.notna(b.get("top5")):
            out["top5_delta"] = b.top5 - a.top5
        rows.append(out)
    table = pd.DataFrame(rows)
    if not table.empty:
        table["significant"] = (table.lo > 0) | (table.hi < 0)
    table.attrs["metric"] = m
    return Comparison(table, notes, m, keys)


def _side_row(row: pd.Series, suffix: str) -> pd.Series:
    cols = {c[: -len(suffix)]: row[c] for c in row.index if c.endswith(suffix)}
    return pd.Series(cols)
