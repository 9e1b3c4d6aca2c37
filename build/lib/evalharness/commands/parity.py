"""`evalharness parity --a F=V... --b F=V... [--n N] [--golden DIR] [overrides]`: two pipelines
stage by stage; `--decoders A,B,...`: decoders pair by pair, on pixels and through the model."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

EPILOG = """\
examples:
  evalharness parity --a decoder=pil --b decoder=opencv --n 64
  evalharness parity --a decoder=pil --b decoder=torchvision,resize=cv2_linear \\
      --golden golden/ dataset=imagenet_val_1300 model=efficientnet_lite0
  evalharness parity --decoders pil,opencv,kornia_rs dataset=imagenet_val_1300 \\
      model=efficientnet_lite0 backend=onnxruntime --out parity/
  evalharness parity --decoders pil,kornia_rs --pixels-only --out parity/

--decoders compares decoders pair by pair instead of two pipelines: per file and pair the
share of pixels that differ, max/mean |diff| and PSNR (pixel_files.csv, pixel_pairs.csv),
then (unless --pixels-only) the decoders swept through the model: each pair's metric
difference with a paired 95% interval and the images that flip (model_pairs.csv, run/).
"""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Stage-by-stage input parity of two pipelines, or of decoders pair by pair.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("overrides", nargs="*", help="shared Hydra overrides (dataset=..., model=...)")
    ap.add_argument("--a", nargs="*", default=[], help="overrides of pipeline A")
    ap.add_argument("--b", nargs="*", default=[], help="overrides of pipeline B")
    ap.add_argument(
        "--n",
        type=int,
        help="samples: 32 evenly spaced over the set for two pipelines; --decoders: the first "
        "n (default all)",
    )
    ap.add_argument("--golden", type=Path, help="write per-sample .npz files here")
    ap.add_argument("--decoders", help="comma-separated decoder options: compare them pair by pair")
    ap.add_argument("--pixels-only", action="store_true", help="--decoders: skip the model part")
    ap.add_argument(
        "--out", type=Path, help="where to write the CSVs (--decoders: default a temp folder)"
    )
    return ap


def _decoders(args) -> int:
    from evalharness.checks.parity_decoders import decoder_parity

    names = [n for n in args.decoders.split(",") if n]
    overrides = [*args.overrides, *([f"dataset.limit={args.n}"] if args.n else [])]
    out = args.out or Path(tempfile.mkdtemp(prefix="parity-decoders-"))
    out.mkdir(parents=True, exist_ok=True)
    report = decoder_parity(overrides, names, out, args.pixels_only)
    report.files.to_csv(out / "pixel_files.csv", index=False)
    report.pixels.to_csv(out / "pixel_pairs.csv", index=False)
    print(f"pixels, {report.n_files} files:")
    print(report.pixels.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if report.model is not None:
        report.model.to_csv(out / "model_pairs.csv", index=False)
        print(f"\nmodel ({report.metric}, {report.n_images} images; delta = b - a, 95% CI):")
        print(report.model.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nwritten: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.decoders:
        return _decoders(args)

    from evalharness.checks.parity import parity
    from evalharness.commands.assignments import as_overrides, parse_assignments

    a = as_overrides(parse_assignments(args.a))
    b = as_overrides(parse_assignments(args.b))
    report = parity(args.overrides, a, b, args.n or 32, args.golden)
    print(f"A: {' '.join(f'{k}={v}' for k, v in report.spec_a.factors)}")
    print(f"B: {' '.join(f'{k}={v}' for k, v in report.spec_b.factors)}")
    print(report.stages.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    firsts = ", ".join(f"{k} {v}" for k, v in report.first_differences.items())
    print("first stage that differs (samples):", firsts)
    if report.outputs:
        print("\n".join(report.outputs))
    if args.out:
        report.table.to_csv(args.out, index=False)
    return 0
