"""The sweep's table on the terminal: the varying factors, the metric with its interval."""

from __future__ import annotations

from evalharness.rundir.summary import summary_factors


def terminal_table(summary, task, max_rows: int = 40) -> str:
    factors = summary_factors(summary)
    varying = [f for f in factors if summary[f].nunique() > 1] or ["backend"]
    t = summary[varying].copy()
    m = task.metric
    if f"{m}_lo" in summary:
        t[f"{m} [95% CI]"] = [
            f"{a:6.2f} [{lo:5.2f}, {hi:5.2f}]"
            for a, lo, hi in zip(summary[m], summary[f"{m}_lo"], summary[f"{m}_hi"], strict=True)
        ]
    for col in task.metric_columns:
        if col != m and not col.endswith(("_lo", "_hi")):
            t[col] = summary[col].map(lambda v: f"{v:6.2f}")
    t["agree_ref"] = summary.agree_ref.map(lambda v: f"{v:6.2f}")
    t["errors"] = summary.n_errors
    t["img/s"] = summary.images_per_s.map(lambda v: f"{v:7.0f}")
    t.insert(0, "", summary.reference.map(lambda r: "ref" if r else ""))
    t = t.iloc[summary[m].sort_values(ascending=False, kind="stable").index]
    text = t.head(max_rows).to_string(index=False)
    if len(t) > max_rows:
        text += f"\n... {len(t) - max_rows} more rows in summary.csv"
    return text
