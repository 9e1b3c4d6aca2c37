"""`python -m evalharness.verify [overrides]`: torch -> ONNX -> OpenVINO, checked on real samples.

Every variant's logits are compared with the reference (torch fp32, or onnxruntime fp32 for a
model that is only a file) on the model card's reference inputs, with Polygraphy's rule: an
element fails only when |a - b| > atol AND |a - b| > rtol * |ref|. Tolerances are per
output (`--atol logits=1e-3` or one number for all). Reports max/mean absolute and relative
difference, failing elements, top-1 agreement and the worst samples. A passing report is
cached beside the export under its content hash: the same export, samples and tolerances are
not verified twice.

    python -m evalharness.verify --n 64
    python -m evalharness.verify model=resnet20_cifar dataset=cifar10_test --rtol 0.01 --atol 0.001
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.backends import BACKENDS
from evalharness.backends.export import OUTPUT_NAME, export_onnx
from evalharness.compose import resolve
from evalharness.data.dataset import spread
from evalharness.preprocess.pipeline import run_pipeline

# (backend, precision) pairs checked against the reference.
CANDIDATES = [
    ("onnxruntime", "fp32"),
    ("onnxruntime", "fp16"),
    ("openvino", "fp32"),
    ("openvino", "fp16"),
    ("openvino", "bf16"),
    ("torch", "bf16"),
]


@dataclass
class Comparison:
    variant: str
    output: str
    atol: float
    rtol: float
    max_abs: float
    mean_abs: float
    max_rel: float
    mean_rel: float
    failing: int
    elements: int
    top1_agreement: float
    worst_samples: str
    passed: bool


def compare(
    ref: np.ndarray,
    out: np.ndarray,
    ids: list[str],
    atol: float,
    rtol: float,
    variant: str,
    output: str = OUTPUT_NAME,
) -> Comparison:
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    rel = diff / np.maximum(np.abs(ref), 1e-12)
    fails = (diff > atol) & (diff > rtol * np.abs(ref))
    per_sample = diff.max(axis=1)
    worst = np.argsort(-per_sample, kind="stable")[:3]
    return Comparison(
        variant=variant,
        output=output,
        atol=atol,
        rtol=rtol,
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        max_rel=float(rel.max()),
        mean_rel=float(rel.mean()),
        failing=int(fails.sum()),
        elements=int(fails.size),
        top1_agreement=float((out.argmax(1) == ref.argmax(1)).mean() * 100),
        worst_samples=";".join(f"{ids[i]}:{per_sample[i]:.2e}" for i in worst),
        passed=not fails.any(),
    )


def parse_tolerance(values: list[str] | None, default: float) -> dict[str, float]:
    """`1e-3` (every output) or `name=1e-3` per output; '*' holds the default."""
    out = {"*": default}
    for v in values or []:
        name, _, num = v.rpartition("=")
        out[name or "*"] = float(num)
    return out


def verify(overrides: list[str], n: int, atol: dict, rtol: dict) -> pd.DataFrame:
    cfg, specs, dataset = resolve(overrides)
    spec = specs[0]
    samples = spread(dataset.samples, n)
    x = np.stack([run_pipeline(spec.stages, s.path) for s in samples])
    ids = [s.sample_id for s in samples]
    cache_dir = str(cfg.cache_dir)
    ref_backend = "torch" if spec.variant.model.has_torch_module else "onnxruntime"
    ref_variant = replace(spec.variant, backend=ref_backend, precision="fp32")
    ref = BACKENDS.get(ref_backend)().load(ref_variant, cache_dir).infer(x)
    a, r = atol.get(OUTPUT_NAME, atol["*"]), rtol.get(OUTPUT_NAME, rtol["*"])
    key = _cache_key(spec, ids, a, r)
    record = Path(export_onnx(spec.variant.model, cache_dir)).with_suffix(f".verified-{key}.json")
    if record.exists():
        print(f"verified before (cached): {record}", file=sys.stderr)
        return pd.DataFrame(json.loads(record.read_text()))
    rows = []
    for backend, precision in CANDIDATES:
        if backend == ref_backend and precision == "fp32":
            continue
        variant = replace(spec.variant, backend=backend, precision=precision)
        try:
            session = BACKENDS.get(backend)().load(variant, cache_dir)
        except (ValueError, RuntimeError) as e:
            print(f"skip {backend}/{precision}: {e}", file=sys.stderr)
            continue
        label = f"{backend}/{precision}"
        ran = getattr(session, "effective_precision", precision)
        if ran != precision:  # say so: a silent fallback would read as a perfect fp16 export
            label += f" (ran {ran})"
        rows.append(asdict(compare(ref, session.infer(x), ids, a, r, label)))
    table = pd.DataFrame(rows)
    if table.passed.all():
        record.write_text(json.dumps(rows, indent=1))
    return table


def _cache_key(spec, ids: list[str], atol: float, rtol: float) -> str:
    payload = [spec.variant.model.weights_sha256, spec.config_id, ids, atol, rtol]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Verify exports against the torch model.")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides (model=..., dataset=...)")
    ap.add_argument(
        "--n", type=int, default=64, help="samples to compare on, evenly spaced over the dataset"
    )
    ap.add_argument("--atol", nargs="*", help="absolute tolerance (default 1e-3)")
    ap.add_argument("--rtol", nargs="*", help="relative tolerance (default 1e-2)")
    args = ap.parse_args(argv)
    table = verify(
        ["progress=false", *args.overrides],
        args.n,
        parse_tolerance(args.atol, 1e-3),
        parse_tolerance(args.rtol, 1e-2),
    )
    cols = [
        "variant",
        "max_abs",
        "mean_abs",
        "max_rel",
        "failing",
        "elements",
        "top1_agreement",
        "passed",
    ]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("worst samples:")
    for row in table.itertuples():
        print(f"  {row.variant}: {row.worst_samples}")
    fp32 = table[table.variant.str.contains("/fp32")]
    return 0 if fp32.passed.all() else 1


if __name__ == "__main__":
    sys.exit(main())
