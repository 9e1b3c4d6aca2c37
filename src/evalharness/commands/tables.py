"""The sweep's table on the terminal: the varying factors, the metric with its interval."""

from __future__ import annotations

from evalharness.rundir.summary import summary_factors


def terminal_table(summary, task, max_rows: int = 40) -> str:
    factors = summary_factors(summary)
    varying = [f for f in factors if summary[f].nunique() > 1] or ["backend"]
    t = summary[varying].copy()
    m = task.metric
    fmt = dict(task.column_formats)
    if f"{m}_lo" in summary:
        f = fmt.get(m, "{:6.2f}")
        t[f"{m} [95% CI]"] = [
            f"{f.format(a)} [{f.format(lo)}, {f.format(hi)}]"
            for a, lo, hi in zip(summary[m], summary[f"{m}_lo"], summary[f"{m}_hi"], strict=True)
        ]
    for col in task.metric_columns:
        if col == m or col.endswith(("_lo", "_hi")) or summary[col].isna().all():
            continue  # a column no config has (psnr_rgb unless asked for) is left out
        t[col] = summary[col].map(fmt.get(col, "{:6.2f}").format)
    if "precision_ran" in summary and "precision" in summary:
        ran = summary.precision_ran.astype(str)
        if (ran != summary.precision.astype(str)).any():  # a runtime ran something else
            t.insert(len(varying), "ran", ran)
    t["agree_ref"] = summary.agree_ref.map(lambda v: f"{v:6.2f}")
    t["errors"] = summary.n_errors
    t["img/s"] = summary.images_per_s.map(lambda v: f"{v:7.0f}")
    t.insert(0, "", summary.reference.map(lambda r: "ref" if r else ""))
    t = t.iloc[summary[m].sort_values(ascending=False, kind="stable").index]
    text = t.head(max_rows).to_string(index=False)
    if len(t) > max_rows:
        text += f"\n... {len(t) - max_rows} more rows in summary.csv"
    return text
