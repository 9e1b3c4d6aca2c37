"""The `layers` comparisons of a run dir in the report, and their two plots.

`evalharness layers` writes RUN_DIR/layers/<A>_vs_<B>-<hash>/ (runner/layers.py); this
module draws its plots (the runner calls them when writing) and turns every such folder
into one report section (`layer_sections`), read from the files alone: a report never runs
a model for it. Sections are plain data (title, verdict, lines, figures, a table) so that
whatever assembles the page can lay them out.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

FOLDER = "layers"
COLOURS = {"flipped": "#d62728", "control": "#1f77b4"}
TABLE_COLUMNS = {  # the report's cut of layers.csv, in its words
    "depth": "depth",
    "step": "step",
    "rel_l2_flipped_med": "rel L2 flipped (median)",
    "rel_l2_control_med": "rel L2 control (median)",
    "ratio": "ratio",
    "sqnr_db_flipped_med": "SQNR dB flipped",
    "cosine_flipped_med": "cosine flipped",
    "added_flipped_med": "added",
    "first_flipped": "first > thr (flipped)",
}


def _png(fig) -> bytes:
    """Own copy of the report's PNG writer: this module does not lean on plots.py."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def error_vs_depth_png(table: pd.DataFrame, parting: str | None, threshold: float) -> bytes:
    """Relative L2 error per layer in graph order: median and 90th percentile over the
    flipped and over the control images (log scale), the threshold, the parting layer."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    depth = table["depth"].to_numpy()
    for s, colour in COLOURS.items():
        med = table[f"rel_l2_{s}_med"].to_numpy(float)
        p90 = table[f"rel_l2_{s}_p90"].to_numpy(float)
        ax.plot(depth, med, color=colour, label=f"{s} (median)", lw=1.5)
        ax.fill_between(depth, med, p90, color=colour, alpha=0.15, label=f"{s} (to p90)")
    ax.axhline(threshold, color="grey", ls=":", lw=1, label=f"threshold {threshold:g}")
    if parting is not None and parting in table.index:
        ax.axvline(table.at[parting, "depth"], color="black", ls="--", lw=1, label="parting")
    positive = table.filter(like="rel_l2_").to_numpy(float)
    if np.isfinite(positive).any() and (positive > 0).any():
        ax.set_yscale("log")
    ax.set_xlabel(f"layer depth (graph order, {len(table)} compared)")
    ax.set_ylabel("relative L2 error of B vs A")
    ax.legend(fontsize=7, ncol=3)
    return _png(fig)


def first_divergence_png(table: pd.DataFrame) -> bytes:
    """Per layer, how many images first exceed the threshold there (flipped vs control)."""
    fig, ax = plt.subplots(figsize=(8, 2.8))
    depth = table["depth"].to_numpy()
    width = 0.42
    for k, (s, colour) in enumerate(COLOURS.items()):
        ax.bar(depth + (k - 0.5) * width, table[f"first_{s}"].to_numpy(), width,
               color=colour, label=s)  # fmt: skip
    ax.set_xlabel("layer depth of the first divergence (rel L2 above the threshold)")
    ax.set_ylabel("images")
    ax.legend(fontsize=7)
    return _png(fig)


@dataclass
class LayersSection:
    """One comparison, ready for a page: what the report shows of it."""

    title: str
    verdict: str
    lines: list[str]
    figures: list[tuple[str, bytes, str]] = field(default_factory=list)  # (file, png, alt)
    table: pd.DataFrame | None = None


def _rows(table: pd.DataFrame, rec: dict) -> pd.DataFrame:
    """The layers worth reading: the first, where they first differ, part, separate, the
    top added error, and the last (all of them when there are few)."""
    names = [table.index[0], table.index[-1]]
    for key in ("first_difference", "parting", "separates"):
        if rec.get(key):
            names.append(rec[key]["layer"])
    names += [t["layer"] for t in rec.get("top_added", [])]
    keep = table.index.isin(names) if len(table) > 20 else np.ones(len(table), bool)
    cut = table.loc[keep, [c for c in TABLE_COLUMNS if c in table.columns]]
    return cut.rename(columns=TABLE_COLUMNS).reset_index()


def layer_sections(run_dir: str | Path) -> list[LayersSection]:
    """One section per RUN_DIR/layers/*/layers.json, newest first ([] when none)."""
    root = Path(run_dir) / FOLDER
    found = sorted(root.glob("*/layers.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    sections = []
    for path in found:
        folder = path.parent
        rec = json.loads(path.read_text())
        table = pd.read_csv(folder / "layers.csv").set_index("layer")
        a, b = rec["labels"]
        lines = [
            f"{rec['n_flips']} of {rec['n_images']} images change outcome between A ({a}) and "
            f"B ({b}); analysed {rec['n_flipped']} of them and {rec['n_control']} controls, "
            f"{rec['layers']} layers compared (first divergence: rel L2 > {rec['threshold']:g})",
            *[f"observer: {line}" for line in rec["observer"]],
        ]
        if rec.get("reproduced"):
            k, n = rec["reproduced"]
            lines.append(f"the probes' top-1 equal the run's predictions on {k} of {n} images")
        lines += rec.get("notes", [])
        lines += (rec.get("exclude") or {}).get("lines", [])
        figures = [
            (f"{FOLDER}/{folder.name}/{name}", (folder / name).read_bytes(), alt)
            for name, alt in (("error_vs_depth.png", "error vs depth"),
                              ("first_divergence.png", "first divergence"))
            if (folder / name).exists()
        ]  # fmt: skip
        sections.append(
            LayersSection(
                f"Where A and B part, layer by layer: {a} vs {b}",
                rec["verdict"],
                lines,
                figures,
                _rows(table, rec),
            )  # fmt: skip
        )
    return sections
