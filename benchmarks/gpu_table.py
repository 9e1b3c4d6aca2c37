"""One model on the GPU against the CPU: top-1, agreement with CPU fp32, max |logit diff| and
inference images/s, side by side in one run on the same host tensors.

The reference pipeline's host tensors are computed once; then every (backend, device,
precision) of `+sweep=gpu` (torch on cuda at fp32/fp16/bf16; onnxruntime cuda/tensorrt where
onnxruntime-gpu is installed: `--ort`) infers all of them in batches of `--batch`, after a
warm-up batch, timed with the device synchronized. Top-1 and agreement are on every image;
the harness's own sweep (`python -m evalharness ... +sweep=gpu`) gives the same top-1.

Where the time goes: host preprocessing per stage (decode, resize, normalize: seconds per
image on one core), host-to-device transfer of the batches (torch variants, timed alone with
the device synchronized) and inference; GPU utilisation sampled with nvidia-smi during each
GPU variant's timed pass (engine/gpu_monitor.py; a harness sweep with a cuda variant writes
the same figures to stats.json).

    python benchmarks/gpu_table.py model=efficientnet_lite0 dataset=imagenet_val_1300
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np
import pandas as pd
import torch

from evalharness.backends.base import BACKENDS
from evalharness.config.compose import compose_config
from evalharness.config.plan import explicit_factors
from evalharness.engine.gpu_monitor import GpuMonitor
from evalharness.engine.infer import infer_batched
from evalharness.preprocess.pipeline import pixels
from evalharness.tasks.classification import as_logits


def host_tensors(stages, samples) -> tuple[np.ndarray, dict[str, float]]:
    """The reference pipeline's host tensors, with the seconds each stage kind took."""
    seconds: dict[str, float] = {}
    out = []
    for sample in samples:
        x = sample.path
        for stage in stages:
            t0 = time.perf_counter()
            x = stage(x)
            seconds[stage.kind] = seconds.get(stage.kind, 0.0) + time.perf_counter() - t0
        out.append(pixels(x))
    return np.stack(out), seconds


def transfer_seconds(x: np.ndarray, batch: int, variant) -> float:
    """Host-to-device copy of every batch alone (what torch's infer does before the model),
    in the variant's dtype, timed with the device synchronized."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(variant.precision, torch.float32)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in range(0, len(x), batch):
        torch.from_numpy(x[b : b + batch]).to("cuda", dtype)
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ort", action="store_true", help="onnxruntime cuda and tensorrt too")
    args = ap.parse_args()
    from evalharness.runner.run import prepare

    overrides = [*args.overrides, "+sweep=gpu", "progress=false"]
    if args.ort:
        overrides += ["sweep.factors.backend=[torch,onnxruntime]",
                      "sweep.factors.device=[cuda,tensorrt]"]  # fmt: skip
    cfg, choices = compose_config(overrides)
    _, _, dataset, _, specs, _, _ = prepare(cfg, choices, explicit_factors(overrides))
    specs = sorted(specs, key=lambda s: (not s.is_reference, s.variant.backend))
    x, stage_seconds = host_tensors(specs[0].stages, dataset.samples)
    per_image = ", ".join(f"{k} {1000 * v / len(x):.1f} ms" for k, v in stage_seconds.items())
    print(f"{len(x)} host tensors {x.shape[1:]}; per image on one core: {per_image}", flush=True)
    labels = np.array([s.label for s in dataset.samples])
    rows, ref = [], None
    for spec in specs:
        v = spec.variant
        session = BACKENDS.get(v.backend)().load(v, str(cfg.cache_dir))
        infer_batched(session, x[: args.batch], args.batch)  # warm-up: kernels, autotune
        if v.device != "cpu" and torch.cuda.is_available():
            torch.cuda.synchronize()
        on_gpu = v.device != "cpu" and torch.cuda.is_available()
        with GpuMonitor(period_ms=100) if on_gpu else contextlib.nullcontext() as gpu:
            t0 = time.perf_counter()
            out = infer_batched(session, x, args.batch)
            if on_gpu:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
        gpu_stats = gpu.stats() if on_gpu else {}
        transfer = transfer_seconds(x, args.batch, v) if on_gpu and v.backend == "torch" else None
        logits = as_logits(next(iter(out.values()))).astype(np.float64)
        if ref is None:
            ref = logits  # the model card's reference: CPU fp32
        rows.append(
            dict(
                backend=v.backend,
                device=v.device,
                precision=v.precision,
                top1=(logits.argmax(1) == labels).mean() * 100,
                agree_cpu_fp32=(logits.argmax(1) == ref.argmax(1)).mean() * 100,
                flips=int((logits.argmax(1) != ref.argmax(1)).sum()),
                max_abs_diff=float(np.abs(logits - ref).max()),
                images_per_s=len(x) / seconds,
                infer_ms_per_image=1000 * seconds / len(x),
                transfer_ms_per_image=None if transfer is None else 1000 * transfer / len(x),
                gpu_util_mean=gpu_stats.get("gpu_utilisation_mean"),
                gpu_util_max=gpu_stats.get("gpu_utilisation_max"),
            )
        )
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"\n## {cfg.model.name} on {dataset.name} ({len(x)} images, batch {args.batch}; {name})")
    fmt = ("", "", "", ".2f", ".2f", ".0f", ".2g", ".0f", ".3f", ".3f", ".0f", ".0f")
    print(table.to_markdown(index=False, floatfmt=fmt))
    cpu = table[table.device == "cpu"].images_per_s.iloc[0]
    for _, r in table[table.device != "cpu"].iterrows():
        ratio = r.images_per_s / cpu
        print(f"{r.backend}/{r.device}/{r.precision} images_per_s / cpu fp32 = {ratio:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
