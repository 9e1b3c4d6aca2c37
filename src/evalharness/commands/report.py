"""`evalharness report RUN_DIR [--b F=V ...]`: report.html and report.md for a run dir."""

from __future__ import annotations

import argparse
from pathlib import Path

from evalharness.commands.output import add_trust_flag, refuse_links, writable_dir

EPILOG = """\
examples:
  evalharness report results/gap
  evalharness report results/gap --b resize=cv2_linear colour=bgr --bootstrap 2000

B defaults to the run's worst config; A is the model card's reference. The page opens with
the run's findings block.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Write report.html and report.md for a run dir.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--b", nargs="*", help="config B as factor=value (default: the worst config)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples (>= 100)")
    ap.add_argument("--out", type=Path, help="write the report (and on-demand configs) here")
    add_trust_flag(ap)
    args = ap.parse_args(argv)

    from evalharness.commands.assignments import parse_assignments
    from evalharness.report.build import write_report
    from evalharness.rundir.records import trusting_edits
    from evalharness.runner.ondemand import RunDirConfigs
    from evalharness.stats.paired import check_resamples

    check_resamples(args.bootstrap)
    if args.out is None:
        refuse_links(args.run_dir, ("explain", "report_assets"))
    if not writable_dir(args.run_dir, args.out):
        raise ValueError(f"cannot write the report into {args.run_dir} (read-only); give --out DIR")
    b = parse_assignments(args.b)
    configs = RunDirConfigs(args.run_dir, args.out and args.out / "explain")
    with trusting_edits(args.trust_edited):
        path = write_report(args.run_dir, configs, b, args.bootstrap, out_dir=args.out)
    print(f"report: {path}")
    return 0
