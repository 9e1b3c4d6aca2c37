"""`evalharness report RUN_DIR [--b F=V ...]`: report.html and report.md for a run dir."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args(argv)

    from evalharness.commands.assignments import parse_assignments
    from evalharness.report.build import write_report
    from evalharness.runner.ondemand import RunDirConfigs

    b = parse_assignments(args.b)
    path = write_report(args.run_dir, RunDirConfigs(args.run_dir), b, args.bootstrap)
    print(f"report: {path}")
    return 0
