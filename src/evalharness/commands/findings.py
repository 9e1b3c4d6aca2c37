"""`evalharness findings RUN_DIR`: the findings block of a finished run dir, again.

The sweep prints it at its end; this re-creates it (and findings.md) for a run dir made by
the Python API, merged from shards, or copied from elsewhere. A read-only run dir is read:
the block is printed, and findings.md (and any config evaluated on demand) goes to --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evalharness.commands.output import add_trust_flag, refuse_links, writable_dir, write_output

EPILOG = """\
examples:
  evalharness findings results/2026-01-01_12-00-00
  evalharness findings results/merged --bootstrap 1000 --max-on-demand 0
  evalharness findings /readonly/run --out /tmp/findings
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Print (and write RUN_DIR/findings.md) the findings of a finished run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--bootstrap", type=int, default=500, help="resamples (>= 100)")
    ap.add_argument(
        "--max-on-demand",
        type=int,
        default=8,
        help="most missing coalition configs to evaluate for the worst config's Shapley split",
    )
    ap.add_argument(
        "--margin",
        type=float,
        help="'no effect within ±margin', in the metric's units (default: the run's "
        "findings.margin, else the metric's: 0.5 points, 0.05 dB for psnr_y)",
    )
    ap.add_argument("--out", type=Path, help="write findings.md (and on-demand configs) here")
    add_trust_flag(ap)
    args = ap.parse_args(argv)

    from evalharness.analysis.findings import findings
    from evalharness.rundir.records import trusting_edits
    from evalharness.runner.ondemand import RunDirConfigs
    from evalharness.stats.paired import check_resamples

    check_resamples(args.bootstrap)
    if args.max_on_demand < 0:
        raise ValueError(f"--max-on-demand must be >= 0, got {args.max_on_demand}")
    max_on_demand = args.max_on_demand
    if args.out is None:
        refuse_links(args.run_dir, ("explain",))  # where configs evaluated on demand go
    writable = writable_dir(args.run_dir, args.out)
    if not writable:
        max_on_demand = 0
        print(
            f"note: {args.run_dir} is read-only: findings.md is not written and configs the "
            "run lacks are not evaluated (--out DIR writes them there)",
            file=sys.stderr,
        )
    with trusting_edits(args.trust_edited):
        configs = RunDirConfigs(args.run_dir, args.out)
        text = findings(
            args.run_dir, configs, None, args.bootstrap, max_on_demand, args.margin
        ).markdown()
    print(text, end="")
    if writable:
        said = write_output((args.out or args.run_dir) / "findings.md", text, "--out DIR")
        if not said.startswith("written"):
            print(f"note: {said}", file=sys.stderr)
    return 0
