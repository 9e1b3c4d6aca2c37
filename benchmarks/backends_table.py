"""One model, every runtime: accuracy, agreement with torch, max |logit diff| and speed.

Two real cases (../shared/data): EfficientNet-Lite0 on imagenet-val-1300 and ResNet-20 on
cifar10-test, each under its model card's reference preprocessing, on backend = torch,
onnxruntime, openvino, tract, ncnn and litert (litert when litert-torch can convert the
model; `--backends` picks), plus ncnn at precision fp16 and bf16.

Two measurements per backend, on the same data:
- the harness sweep (python -m evalharness as a user runs it): top-1, top-5 and agree_ref
  (the share of images whose top-1 equals the reference's; the card's reference runs torch);
- a direct pass: the reference pipeline's host tensors computed once, then every session
  infers all of them with the sweep's batch size and threads: max |logit diff| against
  torch on the same tensors, and images/s of inference alone. Its top-1 must equal the
  sweep's (checked: the two measurements are of the same thing).

    python benchmarks/backends_table.py
    python benchmarks/backends_table.py --cifar-limit 2000 --backends torch tract ncnn
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import open_dict

from evalharness.backends.base import BACKENDS
from evalharness.config.compose import compose_config
from evalharness.config.plan import explicit_factors
from evalharness.engine.loop import infer_batched
from evalharness.paths import PROJECT_ROOT
from evalharness.preprocess.pipeline import run_pipeline
from evalharness.tasks.classification import as_logits

CASES = [("efficientnet_lite0", "imagenet_val_1300"), ("resnet20_cifar", "cifar10_test")]
ALL_BACKENDS = ["torch", "onnxruntime", "openvino", "tract", "ncnn", "litert"]
NCNN_PRECISIONS = ["fp32", "fp16", "bf16"]


def available(backends: list[str]) -> list[str]:
    out = []
    for b in backends:
        why = BACKENDS.get(b).capabilities.missing(b)
        if b == "litert" and importlib.util.find_spec("litert_torch") is None:
            why = "litert-torch (the litert-convert extra) is not installed"
        if why:
            print(f"skip {b}: {why}", file=sys.stderr)
        else:
            out.append(b)
    return out


def sweep(model: str, dataset: str, backends: list[str], limit: int | None, out: Path):
    """The harness run: backend x (ncnn) precision under the card's reference pipeline."""
    from evalharness.runner.run import run

    overrides = [f"model={model}", f"dataset={dataset}", "progress=false"]
    if limit:
        overrides.append(f"dataset.limit={limit}")
    cfg, choices = compose_config(overrides)
    others = [b for b in backends if b != "ncnn"]
    precisions = NCNN_PRECISIONS if "ncnn" in backends else ["fp32"]
    with open_dict(cfg):
        cfg.sweep = {
            "factors": {"backend": backends, "precision": precisions},
            "exclude": [{"backend": others, "precision": precisions[1:]}] if others else [],
        }
    t0 = time.perf_counter()
    summary = run(cfg, out, choices, quiet=True, explicit=explicit_factors(overrides))
    return cfg, summary, time.perf_counter() - t0


def direct_pass(cfg, specs, dataset) -> pd.DataFrame:
    """Every variant on the same host tensors: logits diff vs torch, images/s."""
    stages = specs[0].stages
    frames = [run_pipeline(stages, s.path) for s in dataset.samples]
    x = np.stack([f.pixels for f in frames])
    labels = np.array([s.label for s in dataset.samples])
    rows, ref = [], None
    for spec in sorted(specs, key=lambda s: s.variant.backend != "torch"):
        v = spec.variant
        session = BACKENDS.get(v.backend)().load(v, str(cfg.cache_dir))
        infer_batched(session, x[:2], int(cfg.batch_size))  # warm-up: first-shape builds
        t0 = time.perf_counter()
        out = infer_batched(session, x, int(cfg.batch_size))
        seconds = time.perf_counter() - t0
        logits = as_logits(next(iter(out.values()))).astype(np.float64)
        if ref is None:
            ref = logits
        rows.append(
            dict(
                backend=v.backend,
                precision=v.precision,
                precision_ran=session.precision_ran,
                top1_direct=(logits.argmax(1) == labels).mean() * 100,
                max_abs_diff=float(np.abs(logits - ref).max()),
                agree_direct=(logits.argmax(1) == ref.argmax(1)).mean() * 100,
                images_per_s=len(x) / seconds,
            )
        )
    return pd.DataFrame(rows)


def case(model: str, dataset: str, backends: list[str], limit: int | None) -> pd.DataFrame:
    from evalharness.config.compose import resolve

    with tempfile.TemporaryDirectory() as tmp:
        cfg, summary, wall = sweep(model, dataset, backends, limit, Path(tmp) / "run")
    overrides = [f"model={model}", f"dataset={dataset}", "progress=false"]
    if limit:
        overrides.append(f"dataset.limit={limit}")
    _, _, ds = resolve(overrides)
    specs = [s for s in _specs(cfg, overrides)]
    direct = direct_pass(cfg, specs, ds)
    table = summary[["backend", "precision", "top1", "top5", "agree_ref"]].merge(
        direct, on=["backend", "precision"]
    )
    mismatch = (table.top1 - table.top1_direct).abs() > 1e-9
    if mismatch.any():
        print(f"WARNING: sweep and direct top-1 differ:\n{table[mismatch]}", file=sys.stderr)
    print(f"\n## {model} on {dataset} ({len(ds)} images; sweep wall {wall:.0f} s)")
    cols = ["backend", "precision", "precision_ran", "top1", "top5", "agree_ref",
            "max_abs_diff", "images_per_s"]  # fmt: skip
    fmt = ("", "", "", ".2f", ".2f", ".2f", ".2g", ".0f")
    print(table[cols].to_markdown(index=False, floatfmt=fmt))
    return table


def _specs(cfg, overrides):
    """The sweep's run specs (same factors as `sweep`), for the direct pass."""
    from evalharness.runner.run import prepare

    cfg2, choices = compose_config(overrides)
    with open_dict(cfg2):
        cfg2.sweep = cfg.sweep
    return prepare(cfg2, choices, explicit_factors(overrides))[4]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="*", default=ALL_BACKENDS)
    ap.add_argument("--cifar-limit", type=int, default=None, help="first N CIFAR images")
    ap.add_argument("--imagenet-limit", type=int, default=None)
    ap.add_argument("--only", choices=[m for m, _ in CASES], help="one case")
    args = ap.parse_args(argv)
    if not (PROJECT_ROOT.parent / "shared" / "data").is_dir():
        print("../shared/data is absent: nothing to measure", file=sys.stderr)
        return 2
    backends = available(args.backends)
    limits = {"imagenet_val_1300": args.imagenet_limit, "cifar10_test": args.cifar_limit}
    for model, dataset in CASES:
        if args.only and model != args.only:
            continue
        t0 = time.perf_counter()
        case(model, dataset, backends, limits[dataset])
        print(f"(case wall {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
