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
    from evalharness.analysis.findings import FINDINGS_BOOTSTRAP, MAX_ON_DEMAND, write_findings

    ap = argparse.ArgumentParser(
        description="Print (and write RUN_DIR/findings.md) the findings of a finished run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--bootstrap", type=int, default=FINDINGS_BOOTSTRAP, help="resamples")
    ap.add_argument(
        "--max-on-demand",
        type=int,
        default=MAX_ON_DEMAND,
        help="most missing coalition configs to evaluate for the worst config's Shapley split",
    )
    args = ap.parse_args(argv)
    print(write_findings(args.run_dir, None, args.bootstrap, args.max_on_demand), end="")
    return 0
