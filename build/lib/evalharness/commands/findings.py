"""`evalharness findings RUN_DIR`: the findings block of a finished run dir, again.

The sweep prints it at its end; this re-creates it (and findings.md) for a run dir made by
the Python API, merged from shards, or copied from elsewhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
examples:
  evalharness findings results/2026-01-01_12-00-00
  evalharness findings results/merged --bootstrap 1000 --max-on-demand 0
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Print (and write RUN_DIR/findings.md) the findings of a finished run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--bootstrap", type=int, default=500, help="resamples")
    ap.add_argument(
        "--max-on-demand",
        type=int,
        default=8,
        help="most missing coalition configs to evaluate for the worst config's Shapley split",
    )
    args = ap.parse_args(argv)

    from evalharness.analysis.findings import write_findings
    from evalharness.runner.ondemand import RunDirConfigs

    text = write_findings(
        args.run_dir, RunDirConfigs(args.run_dir), None, args.bootstrap, args.max_on_demand
    )
    print(text, end="")
    return 0
