"""`evalharness compare A B [--fail-on-drop X]`: prints the Comparison of analysis/compare.py
and, as a gate, exits 1 when a config dropped more than X."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  evalharness compare results/yesterday results/today --fail-on-drop 0.5
  evalharness compare results/today reported.csv      # factor columns + an accuracy column

exit codes: 0 done, 1 a config dropped more than --fail-on-drop, 2 unreadable input.
"""


def render(comparison) -> str:
    table, m = comparison.table, comparison.metric
    if table.empty:
        lines = ["no rows in common"]
    else:
        varying = [
            c for c in table.columns[: table.columns.get_loc(f"{m}_a")] if table[c].nunique() > 1
        ] or list(table.columns[:1])
        cols = [*varying, f"{m}_a", f"{m}_b", "delta", "lo", "hi", "method", "significant"]
        lines = [table[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}")]
    notes = comparison.notes
    lines += notes[:10]
    if len(notes) > 10:
        lines.append(f"... and {len(notes) - 10} more rows in only one side")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Compare two results (run dirs or CSVs).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument(
        "--fail-on-drop",
        type=float,
        metavar="POINTS",
        help="exit 1 if any config's metric fell by more than this (the metric's unit)",
    )
    ap.add_argument("--out", type=Path, help="where to write compare.csv (default: B's folder)")
    args = ap.parse_args(argv)

    from evalharness.analysis.compare import compare

    try:
        comparison = compare(args.a, args.b)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or (args.b if args.b.is_dir() else args.b.parent) / "compare.csv"
    comparison.table.to_csv(out, index=False)
    print(render(comparison))
    print(f"written: {out}")
    if args.fail_on_drop is not None:
        drops = comparison.drops(args.fail_on_drop)
        if len(drops):
            print(f"FAIL: {len(drops)} config(s) dropped more than {args.fail_on_drop}")
            return 1
    return 0
