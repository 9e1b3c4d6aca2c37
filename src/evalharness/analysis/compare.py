"""Results against results, with honest deltas: the library behind `evalharness compare`.

A and B are run dirs or CSVs: a summary.csv, or any CSV with factor columns and an accuracy
column (`top1`, `accuracy` or `acc`; `n` optional) -- a number someone reported. Rows are
aligned on the factor columns both sides have. The delta of top-1 (and top-5 where both have
it) gets a 95% interval:
- paired, when both sides are run dirs with predictions for the same samples: paired
  bootstrap over images, and an exact McNemar p-value;
- independent, when both have n: Newcombe's hybrid score interval (from the Wilson intervals);
- against a reported figure without n: the measured side's Wilson interval, the figure exact.
Changes whose interval excludes 0 are flagged, and every row gets the verdict findings and
explain give (`verdict`: "changes the result", "no effect" within the margin, "inconclusive";
stats/verdict.py). Paired rows read the same interval as explain (Tango's score interval
for top-1, the widened paired bootstrap otherwise); an independent row's 90% interval is
its 95% one scaled by 1.645/1.96 about the delta (both are normal-based there).
`--fail-on-drop X` exits 1 when any config's top-1 fell by more than X points: a
regression gate for CI.

The gate fails closed: a metric value that is not a number, is blank or lies outside the
metric's range (0-100 for points), a run dir whose files are not what the run recorded, a
threshold that is NaN or negative, and a comparison in which no row matched are refused
(ValueError, one line) rather than read as "no drop".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.analysis.results import RunResults
from evalharness.rundir import records
from evalharness.rundir.summary import summary_factors
from evalharness.stats.intervals import wilson_interval
from evalharness.stats.paired import bootstrap_indices, compare_values
from evalharness.stats.verdict import (
    PER_IMAGE_RANGE,
    PairedInterval,
    binary_paired_interval,
    bootstrap_paired_interval,
    margin_for,
    verdict,
)

Z90_OVER_Z95 = 1.6449 / 1.9600

ACCURACY_NAMES = ("top1", "accuracy", "acc", "top1_acc")
OTHER_METRICS = ("mAP", "hmean")
# Metrics in points: a value outside is a typo or another unit, never a result.
POINTS = {"top1", "top5", "mAP", "mAP50", "hmean", "text_precision", "text_recall"}


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
            results = RunResults.load(path)  # verifies every file it reads
        else:
            records.verify(path, ["summary.csv"])
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
    table[metric] = numbers(table, metric, path, required=True)
    for col in ("top5", "n", f"{metric}_lo", f"{metric}_hi"):
        table[col] = numbers(table, col, path) if col in table else np.nan
    if "config_id" not in table:
        table["config_id"] = None
    if metric == "top1" and table.top1.max() <= 1.0:  # a fraction, not percent
        table["top1"] *= 100
        if table.top5.notna().any() and table.top5.max() <= 1.0:
            table["top5"] *= 100
    check_range(table, [metric, "top5"], path)
    return Side(str(path), table, results, metric)


def numbers(table: pd.DataFrame, col: str, path: Path, required: bool = False) -> pd.Series:
    """A column as numbers; text is refused, and so is a blank where a value is required."""
    raw = table[col].astype(str).str.strip()
    values = pd.to_numeric(raw.where(raw != "", np.nan), errors="coerce")
    bad = (values.isna() & (raw != "")) | (np.isinf(values))
    if required:
        bad |= values.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        shown = raw.iloc[i] or "blank"
        raise ValueError(
            f"{path}: row {i + 2}: {col} is '{shown}', not a number"
            + (f" ({int(bad.sum())} such rows)" if bad.sum() > 1 else "")
        )
    if col == "n" and (values.dropna() <= 0).any():
        raise ValueError(f"{path}: n must be a positive count of images")
    return values


def check_range(table: pd.DataFrame, cols: list[str], path: Path) -> None:
    for col in cols:
        if col not in POINTS or col not in table:
            continue
        v = table[col]
        out = v.notna() & ((v < 0) | (v > 100))
        if out.any():
            i = int(np.flatnonzero(out.to_numpy())[0])
            raise ValueError(
                f"{path}: row {i + 2}: {col} = {v.iloc[i]:g} is outside 0-100 (points, or a "
                "fraction 0-1 for every row)"
            )


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
    sa_, sb_ = ra.scores(a.config_id), rb.scores(b.config_id)
    if ra.task.paired_binary:
        out["interval"] = binary_paired_interval(r.wrong_to_right, r.right_to_wrong, n)
    else:
        va, vb = ra.values(a.config_id, idx), rb.values(b.config_id, idx)
        changed = int(np.sum(~np.isclose(sa_, sb_, equal_nan=True)))
        per_image = PER_IMAGE_RANGE.get(ra.metric, 100.0)
        if per_image is None:  # unbounded per image (PSNR): the spread of both sides' images
            both = np.concatenate([sa_, sb_])
            both = both[np.isfinite(both)]
            per_image = float(np.ptp(both)) if both.size else None
        out["interval"] = bootstrap_paired_interval(r.delta, vb[1:] - va[1:], changed, n,
                                                    per_image)  # fmt: skip
    return out


def _independent_interval(d: dict, n: float) -> PairedInterval:
    """A row without per-image pairs: its 95% interval, and a 90% one scaled about the delta."""
    delta, lo, hi = d["delta"], d["lo"], d["hi"]
    lo90 = delta - (delta - lo) * Z90_OVER_Z95
    hi90 = delta + (hi - delta) * Z90_OVER_Z95
    return PairedInterval(delta, (lo90, hi90), (lo, hi), int(n) if pd.notna(n) else 0)


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
    # factor columns only one side has (shown as `col (A)`/`col (B)`): rows that differ
    # there were aligned on fewer columns and must not print alike
    unaligned: list[str] = field(default_factory=list)

    def drops(self, threshold: float) -> pd.DataFrame:
        """Rows whose metric fell by more than `threshold` (the metric's unit)."""
        if self.table.empty:
            return self.table
        return self.table[self.table.delta < -threshold]

    def gate(self, threshold: float) -> Gate:
        """The regression gate, failing closed: refuses (ValueError) what it cannot judge."""
        check_threshold(threshold)
        if self.table.empty:
            raise ValueError(
                "nothing compared: no row of A matches a row of B on "
                f"{', '.join(self.keys) or 'the factor columns'}; the gate cannot pass"
            )
        if self.table.delta.isna().any():
            raise ValueError("a delta is not a number; the gate cannot judge it")
        dropped, n = self.drops(threshold), len(self.table)
        if dropped.empty:
            largest = max(0.0, -float(self.table.delta.min()))
            return Gate(True, f"OK: no config dropped more than {threshold:g} ({self.metric}; "
                        f"{n} compared, largest drop {largest:.2f})")  # fmt: skip
        row = dropped.sort_values("delta").iloc[0]
        where = " ".join(f"{k}={row[k]}" for k in self.varying_keys()) or "the only row"
        return Gate(False, f"FAIL: {len(dropped)} of {n} config(s) dropped more than "
                    f"{threshold:g} ({self.metric}); worst {where}: {row.delta:+.2f}")  # fmt: skip

    def varying_keys(self) -> list[str]:
        """Every factor column whose value differs between the compared rows (aligned keys
        and the columns only one side has), so that no two rows print alike."""
        t = self.table
        cols = [c for c in [*self.keys, *self.unaligned] if c in t and t[c].nunique() > 1]
        return cols or [c for c in self.keys[:1] if c in t]


@dataclass
class Gate:
    ok: bool
    line: str


def check_threshold(threshold: float) -> None:
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(
            f"--fail-on-drop must be a number >= 0 (the drop allowed, in the metric's unit), "
            f"got {threshold}"
        )


def compare(a_path: Path, b_path: Path, margin: float | None = None) -> Comparison:
    """B against A, config by config; verdicts at `margin` (default: the metric's, as
    findings.margin)."""
    sa, sb = load_side(a_path), load_side(b_path)
    if sa.metric != sb.metric:
        raise ValueError(f"A reports {sa.metric}, B reports {sb.metric}: nothing to compare")
    m = sa.metric
    mg = margin_for(m, margin)
    unit = sa.results.task.unit if sa.results is not None else "points"
    factors = [f for f in summary_factors(sa.table) if f in summary_factors(sb.table)]
    keys = [f for f in ("model", "dataset", *factors) if f in sa.table and f in sb.table]
    if not keys:
        raise ValueError("A and B share no factor column to align on")
    merged = sa.table.merge(sb.table, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    unaligned = [f"{f} (A)" for f in summary_factors(sa.table) if f not in keys]
    unaligned += [f"{f} (B)" for f in summary_factors(sb.table) if f not in keys]
    notes = []
    for side, tag in (("left_only", "A"), ("right_only", "B")):
        for _, row in merged[merged._merge == side].iterrows():
            notes.append(f"only in {tag}: " + " ".join(f"{k}={row[k]}" for k in keys))
    rows, idx_cache = [], {}
    for _, row in merged[merged._merge == "both"].iterrows():
        a = _side_row(row, "_a")
        b = _side_row(row, "_b")
        out = {k: row[k] for k in keys}
        out.update({c: _unaligned(row, c) for c in unaligned})
        d = _interval(a, b, sa, sb, idx_cache)
        n = min(a.get("n", np.nan), b.get("n", np.nan))
        interval = d.pop("interval", None) or _independent_interval(d, n)
        judged = verdict(interval, mg, unit)
        out.update({f"{m}_a": a[m], f"{m}_b": b[m]}, **d)
        out.update(verdict=judged.word, verdict_text=judged.text())
        if pd.notna(a.get("top5")) and pd.notna(b.get("top5")):
            out["top5_delta"] = b.top5 - a.top5
        rows.append(out)
    table = pd.DataFrame(rows)
    if not table.empty:
        table["significant"] = (table.lo > 0) | (table.hi < 0)
    table.attrs["metric"] = m
    return Comparison(table, notes, m, keys, unaligned)


def _unaligned(row: pd.Series, col: str) -> str:
    """A factor column only one side has, from the merged row (suffixed if both sides have
    a non-factor column of that name)."""
    name, side = col[:-4], col[-2]
    for key in (name, f"{name}_{side.lower()}"):
        if key in row.index and pd.notna(row[key]):
            return str(row[key])
    return ""


def _side_row(row: pd.Series, suffix: str) -> pd.Series:
    cols = {c[: -len(suffix)]: row[c] for c in row.index if c.endswith(suffix)}
    return pd.Series(cols)
