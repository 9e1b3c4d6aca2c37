"""`evalharness compare A B [--fail-on-drop X]`: prints the Comparison of analysis/compare.py
and, as a gate, exits 1 when a config dropped more than X."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evalharness.commands.output import add_trust_flag, write_output

EPILOG = """\
examples:
  evalharness compare results/yesterday results/today --fail-on-drop 0.5
  evalharness compare results/today reported.csv      # factor columns + an accuracy column

exit codes: 0 done, 1 a config dropped more than --fail-on-drop, 2 unreadable input, a value
that is not a number or out of range, an edited run dir, nothing compared, a bad threshold.
The gate ends with one line: "OK: no config dropped more than X" or "FAIL: ...".
"""


def render(comparison) -> str:
    table, m = comparison.table, comparison.metric
    if table.empty:
        lines = ["no rows in common"]
    else:
        varying = comparison.varying_keys()
        cols = [*varying, f"{m}_a", f"{m}_b", "delta", "lo", "hi", "method", "verdict"]
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
    ap.add_argument(
        "--margin",
        type=float,
        help="'no effect within ±margin', in the metric's units (default 0.5 points; "
        "0.05 dB for psnr_y)",
    )
    ap.add_argument("--out", type=Path, help="where to write compare.csv (default: B's folder)")
    add_trust_flag(ap)
    args = ap.parse_args(argv)

    from evalharness.analysis.compare import check_threshold, compare
    from evalharness.rundir.records import trusting_edits

    try:
        if args.fail_on_drop is not None:
            check_threshold(args.fail_on_drop)  # before any work
        with trusting_edits(args.trust_edited):
            comparison = compare(args.a, args.b, args.margin)
        gate = comparison.gate(args.fail_on_drop) if args.fail_on_drop is not None else None
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render(comparison))
    out = args.out or (args.b if args.b.is_dir() else args.b.parent) / "compare.csv"
    print(write_output(out, comparison.table.to_csv(index=False), "--out FILE"))
    if gate is not None:
        print(gate.line)
        return 0 if gate.ok else 1
    return 0
