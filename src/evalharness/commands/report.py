"""`evalharness report RUN_DIR [--a F=V ...] [--b F=V ...] [--other RUN_B]`: report.html and
report.md for a pair of configs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from evalharness.commands.output import add_trust_flag, refuse_links, writable_dir

EPILOG = """\
examples:
  evalharness report results/gap
  evalharness report results/gap --a resize=cv2_linear --b resize=pil_bilinear
  evalharness report results/gap --b resize=cv2_linear colour=bgr --bootstrap 2000
  evalharness report results/laptop --other results/phone         # one config, two runs
  evalharness report results/laptop --other results/phone --b backend=tract

A is the model card's reference with --a's factors changed; B is A with --b's changed (the
run's worst config when neither is given). With --other, B is A's config (with --b's changes)
in the other run dir. Configs a run lacks are evaluated on demand, as explain does. The page
(report.html, with report_assets/ beside it: one folder that opens offline) opens with the
run's findings block, then A against B, every image whose outcome flips between them with
what each model saw, and the run's tables (sortable, filterable; CSVs in report_assets/).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Write report.html and report.md for a pair of configs of a run dir.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--a", nargs="*", help="config A as factor=value (default: the reference)")
    ap.add_argument("--b", nargs="*", help="config B as factor=value (default: the worst config)")
    ap.add_argument("--other", type=Path, help="a second run dir B's config is read from")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples (>= 100)")
    ap.add_argument(
        "--gallery-limit",
        type=int,
        default=None,
        help="draw only this many flipped images, most moved first (default: all)",
    )
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
    a, b = parse_assignments(args.a), parse_assignments(args.b)
    configs = RunDirConfigs(args.run_dir, args.out and args.out / "explain")
    other = RunDirConfigs(args.other) if args.other is not None else None
    t0 = time.perf_counter()
    with trusting_edits(args.trust_edited):
        path = write_report(args.run_dir, configs, b, args.bootstrap, a_over=a,
                            other=args.other, other_configs=other,
                            gallery_limit=args.gallery_limit, out_dir=args.out)  # fmt: skip
    print(f"report: {path} ({time.perf_counter() - t0:.1f} s)")
    return 0
