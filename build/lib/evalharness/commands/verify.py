"""`evalharness verify [overrides] [--n N] [--atol ...] [--rtol ...]`: every export the
installed runtimes can run, against the torch model (or onnxruntime fp32), with tolerances."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  evalharness verify --n 64
  evalharness verify model=resnet20_cifar dataset=cifar10_test --rtol 0.01 --atol 0.001

exit codes: 0 every fp32 export passes, 1 one fails, 2 a wrong option or file.
"""
COLUMNS = ["variant", "max_abs", "mean_abs", "max_rel", "failing", "elements",
           "top1_agreement", "passed"]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Verify exports against the torch model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("overrides", nargs="*", help="Hydra overrides (model=..., dataset=...)")
    ap.add_argument(
        "--n", type=int, default=64, help="samples to compare on, evenly spaced over the dataset"
    )
    ap.add_argument("--atol", nargs="*", help="absolute tolerance (default 1e-3)")
    ap.add_argument("--rtol", nargs="*", help="relative tolerance (default 1e-2)")
    args = ap.parse_args(argv)

    from evalharness.checks.verify import parse_tolerance, verify

    report = verify(
        ["progress=false", *args.overrides],
        args.n,
        parse_tolerance(args.atol, 1e-3),
        parse_tolerance(args.rtol, 1e-2),
    )
    if report.cached:
        print(f"verified before (cached): {report.cached}", file=sys.stderr)
    for line in report.skipped:
        print(line, file=sys.stderr)
    table = report.table
    print(table[COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("worst samples:")
    for row in table.itertuples():
        print(f"  {row.variant}: {row.worst_samples}")
    return 0 if report.fp32_passed else 1
