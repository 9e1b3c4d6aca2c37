"""matplotlib figures as PNG bytes (Agg backend: no display needed)."""

from __future__ import annotations

import io
import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from evalharness.analysis.effects import interaction_table  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def heatmaps(
    summary: pd.DataFrame,
    factors: list[str],
    metric: str = "top1",
    reference: float = 0.0,
    limit: int = 6,
) -> list[tuple[str, bytes]]:
    """Mean metric over every pair of varying factors (the first `limit` pairs), each cell
    a marginal mean over the other factors minus the reference config's metric: a
    diverging scale centred on 0 (white), so what is worse than the reference reads red."""
    from matplotlib.colors import TwoSlopeNorm

    out = []
    fmt = "{:+.1f}" if metric == "top1" else "{:+.3f}"
    for f1, f2 in list(itertools.combinations(factors, 2))[:limit]:
        t = interaction_table(summary, f1, f2, metric) - reference
        values = t.to_numpy(dtype=float)
        span = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
        span = span or 1.0
        fig, ax = plt.subplots(figsize=(1.6 + 1.1 * t.shape[1], 1.2 + 0.5 * t.shape[0]))
        im = ax.imshow(values, cmap="RdBu", norm=TwoSlopeNorm(0.0, -span, span), aspect="auto")
        ax.set_xticks(range(t.shape[1]), t.columns, rotation=30, ha="right")
        ax.set_yticks(range(t.shape[0]), t.index)
        ax.set_xlabel(f2)
        ax.set_ylabel(f1)
        for (i, j), v in np.ndenumerate(values):
            colour = "w" if abs(v) > 0.6 * span else "k"
            ax.text(j, i, fmt.format(v), ha="center", va="center", color=colour, fontsize=8)
        title = (f"{f1} x {f2}: mean {metric} over the other factors\n"
                 f"minus the reference's {reference:.2f} (0 = the reference)")  # fmt: skip
        ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=ax, label=f"{metric} - reference")
        out.append((f"{f1} x {f2}: mean {metric} over the other factors minus the reference's",
                    _png(fig)))  # fmt: skip
    return out


def main_effect_bars(effects: pd.DataFrame, metric: str = "top1") -> bytes:
    """Each level against the reference (0): its paired difference with the 95% interval the
    verdict reads, the margin drawn as a band (analysis/effects.py::effects_table)."""
    labels = [f"{r.factor}={r.level} ({r.verdict})" for r in effects.itertuples()]
    y = np.arange(len(effects))
    v, lo, hi = effects["delta"], effects["lo"], effects["hi"]
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.28 * len(effects)))
    colours = ["#e45756" if d < 0 else "#54a24b" for d in v]
    ax.barh(y, v, xerr=[v - lo, hi - v], color=colours, capsize=2)
    margin = float(effects["margin"].iloc[0]) if len(effects) else 0.0
    ax.axvspan(-margin, margin, color="#dddddd", zorder=0, label=f"±{margin:g} (margin)")
    ax.axvline(0, color="k", linewidth=0.8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} minus the reference's (paired, 95% CI; all else as the reference)")
    ax.legend(loc="lower right", fontsize=7)
    return _png(fig)


def waterfall(
    a_acc: float, terms: list[tuple[str, float, float, float]], b_label: str, metric: str = "top1"
) -> bytes:
    """metric(A), then each factor's Shapley term with its CI, ending at metric(B)."""
    fig, ax = plt.subplots(figsize=(1.8 + 1.2 * len(terms), 3.8))
    level = a_acc
    ax.bar(0, a_acc, color="#999999")
    for k, (_, phi, lo, hi) in enumerate(terms, start=1):
        color = "#e45756" if phi < 0 else "#54a24b"
        ax.bar(k, phi, bottom=level, color=color)
        ax.errorbar(k, level + phi, yerr=[[phi - lo], [hi - phi]], color="k", capsize=3)
        level += phi
    ax.bar(len(terms) + 1, level, color="#999999")
    ax.set_xticks(range(len(terms) + 2), ["A", *[t[0] for t in terms], f"B\n{b_label}"],
                  fontsize=8)  # fmt: skip
    ax.set_ylabel(metric)
    span = max(abs(level - a_acc), 1e-9)
    top = 100.0 if metric == "top1" else max(level, a_acc) + span
    ax.set_ylim(max(0.0, min(level, a_acc) - 2 * span), min(top, max(level, a_acc) + span))
    return _png(fig)
