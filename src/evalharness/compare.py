"""`python -m evalharness.compare A B`: results against results, with honest deltas.

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

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.analysis.paired import bootstrap_indices, compare_pair
from evalharness.analysis.stats import wilson_interval
from evalharness.engine.plan import FACTORS

ACCURACY_NAMES = ("top1", "accuracy", "acc", "top1_acc")


@dataclass
class Side:
    label: str
    table: pd.DataFrame  # factor columns + top1 (+ n, top5, config_id)
    predictions: pd.DataFrame | None


def load_side(path: Path) -> Side:
    path = Path(path)
    preds = None
    if path.is_dir():
        if (path / "predictions.parquet").exists():
            preds = pd.read_parquet(
                path / "predictions.parquet", columns=["config_id", "sample_id", "correct1"]
            )
        path = path / "summary.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    table = pd.read_csv(path, dtype=str)
    acc = next((c for c in ACCURACY_NAMES if c in table.columns), None)
    if acc is None:
        raise ValueError(f"{path}: no accuracy column (one of {', '.join(ACCURACY_NAMES)})")
    table = table.rename(columns={acc: "top1"})
    for col in ("top1", "top5", "n"):  # missing ones as NaN: both sides get the same columns
        table[col] = pd.to_numeric(table[col], errors="coerce") if col in table else np.nan
    if "config_id" not in table:
        table["config_id"] = None
    if table.top1.max() <= 1.0:  # a fraction, not percent
        table["top1"] *= 100
    return Side(str(path), table, preds)


def newcombe(p1: float, n1: float, p2: float, n2: float) -> tuple[float, float]:
    """95% CI of p2 - p1 (fractions) for independent samples (Newcombe 1998, method 10)."""
    l1, u1 = (float(v) for v in wilson_interval(p1 * n1, n1))
    l2, u2 = (float(v) for v in wilson_interval(p2 * n2, n2))
    d = p2 - p1
    return d - np.hypot(p2 - l2, u1 - p1), d + np.hypot(u2 - p2, p1 - l1)


def _interval(a: pd.Series, b: pd.Series, sa: Side, sb: Side, idx_cache: dict) -> dict:
    delta = b.top1 - a.top1
    paired = (
        sa.predictions is not None
        and sb.predictions is not None
        and "config_id" in a
        and "config_id" in b
    )
    if paired:
        va = sa.predictions[sa.predictions.config_id == a.config_id].set_index("sample_id")
        vb = sb.predictions[sb.predictions.config_id == b.config_id].set_index("sample_id")
        if len(va) == len(vb) and va.index.sort_values().equals(vb.index.sort_values()):
            vb = vb.loc[va.index]
            n = len(va)
            idx = idx_cache.setdefault(n, bootstrap_indices(n, 2000))
            r = compare_pair(va.correct1.to_numpy(), vb.correct1.to_numpy(), list(va.index), idx)
            return dict(
                delta=delta,
                lo=r.delta_lo,
                hi=r.delta_hi,
                method="paired bootstrap",
                p_mcnemar=r.p_mcnemar,
                right_to_wrong=r.right_to_wrong,
                wrong_to_right=r.wrong_to_right,
            )
    na, nb = a.get("n", np.nan), b.get("n", np.nan)
    if pd.notna(na) and pd.notna(nb):
        lo, hi = newcombe(a.top1 / 100, na, b.top1 / 100, nb)
        return dict(delta=delta, lo=lo * 100, hi=hi * 100, method="Newcombe (independent)")
    measured, n, sign = (a, na, -1) if pd.notna(na) else (b, nb, 1)
    if pd.isna(n):
        return dict(delta=delta, lo=np.nan, hi=np.nan, method="no n on either side")
    wl, wh = (float(v) * 100 for v in wilson_interval(measured.top1 / 100 * n, n))
    other = b.top1 if sign < 0 else a.top1
    lo, hi = sorted([sign * (wl - other), sign * (wh - other)])
    return dict(delta=delta, lo=lo, hi=hi, method="vs reported figure (Wilson)")


def compare(a_path: Path, b_path: Path) -> tuple[pd.DataFrame, list[str]]:
    sa, sb = load_side(a_path), load_side(b_path)
    keys = [f for f in ("model", "dataset", *FACTORS) if f in sa.table and f in sb.table]
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
        out.update(top1_a=a.top1, top1_b=b.top1, **_interval(a, b, sa, sb, idx_cache))
        if pd.notna(a.get("top5")) and pd.notna(b.get("top5")):
            out["top5_delta"] = b.top5 - a.top5
        rows.append(out)
    table = pd.DataFrame(rows)
    if not table.empty:
        table["significant"] = (table.lo > 0) | (table.hi < 0)
    return table, notes


def _side_row(row: pd.Series, suffix: str) -> pd.Series:
    cols = {c[: -len(suffix)]: row[c] for c in row.index if c.endswith(suffix)}
    return pd.Series(cols)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compare two results (run dirs or CSVs).")
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument(
        "--fail-on-drop",
        type=float,
        metavar="POINTS",
        help="exit 1 if any config's top-1 fell by more than this",
    )
    ap.add_argument("--out", type=Path, help="where to write compare.csv (default: B's folder)")
    args = ap.parse_args(argv)
    try:
        table, notes = compare(args.a, args.b)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or (args.b if args.b.is_dir() else args.b.parent) / "compare.csv"
    table.to_csv(out, index=False)
    if table.empty:
        print("no rows in common")
    else:
        varying = [
            c for c in table.columns[: table.columns.get_loc("top1_a")] if table[c].nunique() > 1
        ] or list(table.columns[:1])
        cols = [*varying, "top1_a", "top1_b", "delta", "lo", "hi", "method", "significant"]
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    for n in notes[:10]:
        print(n)
    if len(notes) > 10:
        print(f"... and {len(notes) - 10} more rows in only one side")
    print(f"written: {out}")
    if args.fail_on_drop is not None and not table.empty:
        drops = table[table.delta < -args.fail_on_drop]
        if len(drops):
            print(f"FAIL: {len(drops)} config(s) dropped more than {args.fail_on_drop} points")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
