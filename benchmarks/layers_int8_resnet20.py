"""Where int8 deployments of ResNet-20 part from each other, layer by layer (issue 33).

On a CIFAR-10 subset, with the project's own plan (`plan_for`: PIL, no resize, ImageNet
mean/std, RGB; the 300 held-out calibration images; the cached int8_ort QDQ model and
int8_nncf IR the tool itself builds and runs), it finds the images whose top-1 flips between
two deployments (engine sessions, as the tool measures them) and runs evalharness.layerwise
on up to 64 flipped and 64 control images:

  1. (onnxruntime, int8_ort) vs (openvino, int8_ort): the same QDQ file on two runtimes;
  2. (onnxruntime, fp32) vs (onnxruntime, int8_ort);
  3. (onnxruntime, fp32) vs (openvino, int8_nncf)        (--nncf)

with the observer check of every probe (OpenVINO falls back to one compiled model per tensor
when exposing all at once moves its outputs), and with --try-exclude K re-quantizes keeping
the K layers that add the most error in float and counts the new model's flips against A
and B over the whole subset.

    python benchmarks/layers_int8_resnet20.py --try-exclude 3 --nncf   # about 1 min, 2 cores
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.paths import PROJECT_ROOT

CIFAR = PROJECT_ROOT.parent / "shared" / "data" / "cifar10-test"
OVERRIDES = ["model=resnet20_cifar", "dataset=cifar10_test", "+sweep=int8", "threads=1"]
ORT_INT8, OV_INT8 = ("onnxruntime", "int8_ort"), ("openvino", "int8_ort")
ORT_FP32, OV_NNCF = ("onnxruntime", "fp32"), ("openvino", "int8_nncf")
COLUMNS = {
    "depth": "d",
    "step": "step",
    "rel_l2_flipped_med": "relL2 flip",
    "rel_l2_flipped_p90": "p90",
    "rel_l2_control_med": "relL2 ctrl",
    "rel_l2_control_p90": "p90 ",
    "sqnr_db_flipped_med": "SQNR flip",
    "cosine_flipped_med": "cos flip",
    "max_abs_flipped_p90": "max|d| p90",
    "ratio": "ratio",
    "added_flipped_med": "added",
    "first_flipped": "first",
    "observer_b": "obs B",
}


class Clock:
    """Prints each phase's seconds as it ends, and the total at the end."""

    def __init__(self) -> None:
        self.t0 = self.last = time.perf_counter()

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        print(f"  [{now - self.last:6.1f} s] {what}", flush=True)
        self.last = now

    def total(self) -> float:
        return time.perf_counter() - self.t0


@dataclass
class Context:
    """Everything the comparisons share: the tool's plan, models and the subset."""

    specs: dict  # (backend, precision) -> RunSpec
    cache: str
    calib: list  # host tensors of the calibration images (the int8 config's own)
    x: np.ndarray  # host tensors of the subset
    labels: np.ndarray
    paths: dict  # precision -> the model file the runtime reads
    preds: dict  # (backend, precision) -> engine top-1 on the subset


def prepare(n: int, nncf: bool, cache_dir: str | None) -> Context:
    """The tool's plan of the int8 sweep, its calibration tensors, models and the subset."""
    from evalharness.backends.export import export_onnx
    from evalharness.backends.quantize import Timer, quantize_nncf
    from evalharness.backends.variants import onnx_for_variant
    from evalharness.config.runplan import plan_for
    from evalharness.data.dataset import spread
    from evalharness.engine.calibration import tensors
    from evalharness.preprocess.pipeline import run_pipeline

    plan = plan_for(OVERRIDES)
    specs = {(s.variant.backend, s.variant.precision): s for s in plan.specs}
    cache = cache_dir or plan.options.cache_dir
    ref = specs[ORT_INT8]
    calib = tensors(ref, list(plan.calibration.samples))
    samples = spread(plan.dataset.samples, n)
    x = np.stack([run_pipeline(ref.stages, s.path).pixels for s in samples])
    labels = np.array([s.label for s in samples])
    fp32 = export_onnx(ref.variant.model, cache)
    paths = {"fp32": fp32, "int8_ort": onnx_for_variant(ref.variant, cache, calib)}
    if nncf:
        paths["int8_nncf"] = quantize_nncf(fp32, specs[OV_NNCF].variant, calib, cache, Timer())
    print(f"  {len(plan.dataset.samples)} held-out images, {len(calib)} calibration, {n} used")
    return Context(specs, cache, calib, x, labels, paths, {})


def top1(infer, x: np.ndarray, batch: int = 250) -> np.ndarray:
    """Top-1 of `infer(batch) -> {name: logits}` over x."""
    out = [
        next(iter(infer(np.ascontiguousarray(x[i : i + batch])).values())).argmax(1)
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(out)


def engine_predictions(ctx: Context, keys) -> None:
    """Top-1 of each config through the backend's own session: what the tool measures."""
    from evalharness.backends.base import BACKENDS

    for key in keys:
        spec = ctx.specs[key]
        session = BACKENDS.get(key[0])().load(spec.variant, ctx.cache, calibration=ctx.calib)
        ctx.preds[key] = top1(session.infer, ctx.x)
        print(f"  {key}: top-1 {(ctx.preds[key] == ctx.labels).mean():.2%} on {len(ctx.x)}")


def pick(mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    idx = np.flatnonzero(mask)
    return np.sort(rng.choice(idx, size=min(k, len(idx)), replace=False))


def flips(a: np.ndarray, b: np.ndarray) -> str:
    return f"{int((a != b).sum())} flips ({(a != b).mean():.2%})"


def make_probe(ctx: Context, key, graph, mode: str = "all"):
    from evalharness.layerwise import OpenVinoProbe, OrtProbe

    if key[0] == "onnxruntime":
        return OrtProbe(ctx.paths[key[1]], graph.layers)
    return OpenVinoProbe(ctx.paths[key[1]], graph.layers, mode=mode)


def observer_safe_probe(ctx: Context, key, graph, images: np.ndarray):
    """A probe of `key`; for OpenVINO, one model per tensor if exposing all moves outputs."""
    from evalharness.layerwise.divergence import observer_check

    probe = make_probe(ctx, key, graph)
    if key[0] == "openvino":
        check = observer_check(probe, images, label=f"{key}, every tensor at once")
        print(f"  {check.describe()}")
        if not check.exact:
            print("  -> one compiled model per tensor (mode 'each')")
            probe = make_probe(ctx, key, graph, mode="each")
    return probe


def analyse(ctx: Context, ka, kb, graph, args, rng, clock: Clock):
    """The layerwise comparison of deployments A and B on flipped and control images."""
    from evalharness.layerwise import layer_divergence

    print(f"\n== A = {ka} vs B = {kb}  ({len(graph.layers)} layers in the reference graph)")
    flipped = ctx.preds[ka] != ctx.preds[kb]
    fi, ci = pick(flipped, args.per_set, rng), pick(~flipped, args.per_set, rng)
    print(
        f"  {flips(ctx.preds[ka], ctx.preds[kb])} of {len(ctx.x)}; analysing {len(fi)} + {len(ci)}"
    )
    both = ctx.x[np.concatenate([fi, ci])]
    pa = observer_safe_probe(ctx, ka, graph, both)
    pb = observer_safe_probe(ctx, kb, graph, both)
    clock.lap("probes")
    labels = (f"{ka[0]}/{ka[1]}", f"{kb[0]}/{kb[1]}")
    res = layer_divergence(pa, pb, ctx.x[fi], ctx.x[ci], graph, threshold=args.threshold,
                           labels=labels, top_k=max(5, args.try_exclude))  # fmt: skip
    clock.lap("layer divergence")
    idx = np.concatenate([fi, ci])
    same = (res.images["top1_a"].to_numpy() == ctx.preds[ka][idx]) & (
        res.images["top1_b"].to_numpy() == ctx.preds[kb][idx]
    )
    print(f"  probes' plain top-1 = engine sessions' top-1 on {same.sum()} of {len(idx)}")
    show(res)
    return res


def show(result, max_rows: int = 60) -> None:
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    t = result.table[list(COLUMNS)].rename(columns=COLUMNS)
    t.index = [ix if len(ix) <= 44 else "..." + ix[-41:] for ix in t.index]
    print(t.head(max_rows).to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"  observer: {result.observer[0].describe()}")
    print(f"            {result.observer[1].describe()}")
    hist = result.first_divergence[result.first_divergence > 0]
    print(f"  first divergence (flipped, rel L2 > {result.threshold:g}): {hist.to_dict()}")
    ctrl = result.first_divergence_control[result.first_divergence_control > 0]
    print(f"  first divergence (control): {ctrl.to_dict()}")
    print("  top added error: " + ", ".join(f"{t} (+{v:.4f})" for t, v in result.top_added))
    for side, un in (("A", result.unmatched_a), ("B", result.unmatched_b)):
        reasons = pd.Series(un, dtype=object).value_counts().to_dict()
        print(f"  not compared on {side}: {len(un)} tensors: {reasons}")
    first = result.first_difference
    where = f"{first} (depth {result.table.at[first, 'depth']})" if first else "nowhere"
    print(f"  first layer that differs at all on a flipped image: {where}")
    contrast = result.contrast_layer(1.2)
    where = f"{contrast} (depth {result.table.at[contrast, 'depth']})" if contrast else "nowhere"
    print(f"  flipped median error >= 1.2 x control's first at: {where}")
    print(f"  VERDICT: {result.verdict}")


def try_exclude(ctx: Context, ka, kb, res, graph, k: int, tmp: Path) -> None:
    """Re-quantize keeping the top-k added-error layers float; flips against A and B."""
    from evalharness.layerwise import (
        OpenVinoProbe,
        OrtProbe,
        nodes_for_layers,
        requantize_nncf,
        requantize_ort,
    )

    top = [t for t, _ in res.top_added[:k]]
    nodes = nodes_for_layers(graph, top, res.table.index)
    print(f"  {ka} vs {kb}: keep float {top}\n    nodes {nodes}")
    fp32, stem = ctx.paths["fp32"], f"{ka[0]}-{kb[0]}-{kb[1]}"
    if kb[1] == "int8_ort":
        new = requantize_ort(fp32, ctx.calib, nodes, tmp / f"{stem}.onnx")
        probes = {"onnxruntime": OrtProbe(new, []), "openvino": OpenVinoProbe(new, [])}
    else:
        new = requantize_nncf(fp32, ctx.calib, nodes, tmp / stem)
        probes = {"openvino": OpenVinoProbe(new, [])}
    got = {runtime: top1(probe.plain, ctx.x) for runtime, probe in probes.items()}
    for runtime, pred in got.items():
        print(
            f"    new model on {runtime}: top-1 {(pred == ctx.labels).mean():.2%}; vs A {ka}: "
            f"{flips(ctx.preds[ka], pred)}; vs B {kb}: {flips(ctx.preds[kb], pred)}"
        )
    if len(got) == 2:
        print(f"    new model, onnxruntime vs openvino: {flips(*got.values())}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="images of the held-out set")
    ap.add_argument("--per-set", type=int, default=64, help="flipped and control images")
    ap.add_argument("--threshold", type=float, default=0.05, help="first-divergence rel L2")
    ap.add_argument("--try-exclude", type=int, default=0, metavar="K")
    ap.add_argument("--nncf", action="store_true", help="also fp32 vs (openvino, int8_nncf)")
    ap.add_argument("--cache-dir", help="derived-model cache (default: the tool's)")
    args = ap.parse_args()
    if not CIFAR.exists():
        print(f"{CIFAR} is absent", file=sys.stderr)
        return 2
    from evalharness.layerwise import LayerGraph

    clock, rng = Clock(), np.random.default_rng(0)
    ctx = prepare(args.n, args.nncf, args.cache_dir)
    clock.lap("plan, subset, the tool's cached export and int8 models")
    keys = [ORT_FP32, ORT_INT8, OV_INT8] + ([OV_NNCF] if args.nncf else [])
    engine_predictions(ctx, keys)
    clock.lap("engine sessions on the subset")
    g_fp32, g_qdq = (
        LayerGraph.from_onnx(ctx.paths["fp32"]),
        LayerGraph.from_onnx(ctx.paths["int8_ort"]),
    )
    pairs = [(ORT_INT8, OV_INT8, g_qdq), (ORT_FP32, ORT_INT8, g_fp32)]
    pairs += [(ORT_FP32, OV_NNCF, g_fp32)] if args.nncf else []
    results = [(ka, kb, analyse(ctx, ka, kb, g, args, rng, clock), g) for ka, kb, g in pairs]
    if args.try_exclude:
        print(f"\n== --try-exclude {args.try_exclude}: re-quantize with the top layers in float")
        with tempfile.TemporaryDirectory(prefix="layers-exclude-") as tmp:
            for ka, kb, res, graph in results:
                try_exclude(ctx, ka, kb, res, graph, args.try_exclude, Path(tmp))
                clock.lap("re-quantize and evaluate")
    print(f"\ntotal {clock.total():.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
