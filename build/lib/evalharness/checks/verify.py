"""Exports checked against the model on real samples: the library behind `evalharness verify`.

Every variant's logits are compared with the reference (torch fp32, or onnxruntime fp32 for a
model that is only a file) on the model card's reference inputs, with Polygraphy's rule: an
element fails only when |a - b| > atol AND |a - b| > rtol * |ref|. Tolerances are per
output (`--atol logits=1e-3` or one number for all). Reports max/mean absolute and relative
difference, failing elements, top-1 agreement and the worst samples. A passing report is
cached beside the export under its content hash: the same export, samples and tolerances are
not verified twice.

    evalharness verify --n 64
    evalharness verify model=resnet20_cifar dataset=cifar10_test --rtol 0.01 --atol 0.001
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.backends.base import BACKENDS
from evalharness.config.runplan import plan_for
from evalharness.data.dataset import spread
from evalharness.engine.loop import infer_batched
from evalharness.optional import MissingRuntimeError
from evalharness.preprocess.pipeline import run_pipeline

# Precisions that need a calibration set or a GPU are checked by their own sweeps, not here.
SKIP_PRECISIONS = {"int8_ort", "int8_nncf"}


def candidates(model, placement: str, device: str = "cpu") -> list[tuple[str, str]]:
    """(backend, precision) pairs to check: every backend whose declared capabilities run
    this model's source, placement and device, with its runtime installed; every precision
    it declares."""
    out = []
    for name in BACKENDS.names():
        caps = BACKENDS.get(name).capabilities
        if model.source not in caps.sources or placement not in caps.placements:
            continue
        if device not in caps.devices or caps.missing(name):
            continue
        out += [(name, p) for p in caps.precisions if p not in SKIP_PRECISIONS]
    return out


@dataclass
class OutputComparison:
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
    output: str = "logits",
) -> OutputComparison:
    ref = ref.reshape(len(ref), -1)
    out = out.reshape(len(out), -1)
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    rel = diff / np.maximum(np.abs(ref), 1e-12)
    fails = (diff > atol) & (diff > rtol * np.abs(ref))
    per_sample = diff.max(axis=1)
    worst = np.argsort(-per_sample, kind="stable")[:3]
    return OutputComparison(
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


@dataclass
class VerifyReport:
    """One row per (variant, output) against the reference; what was skipped and why."""

    table: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    cached: Path | None = None  # a passing report from before, reused

    @property
    def fp32_passed(self) -> bool:
        fp32 = self.table[self.table.variant.str.contains("/fp32")] if len(self.table) else []
        return bool(len(fp32) == 0 or fp32.passed.all())


def verify(overrides: list[str], n: int, atol: dict, rtol: dict) -> VerifyReport:
    plan = plan_for(overrides)
    specs, dataset = plan.specs, plan.dataset
    spec = next((s for s in specs if s.is_reference), specs[0])
    samples = spread(dataset.samples, n)
    frames = [run_pipeline(spec.stages, s.path) for s in samples]
    if len({f.pixels.shape for f in frames}) > 1:
        raise ValueError("verify needs one input size: use a fixed-size resize policy")
    x = np.stack([f.pixels for f in frames])
    ids = [s.sample_id for s in samples]
    cache_dir = plan.options.cache_dir
    model = spec.variant.model
    ref_backend = spec.variant.backend  # the card's reference: the first runtime (by rank)
    ref_variant = replace(spec.variant, backend=ref_backend, precision="fp32")
    ref = _outputs(ref_backend, ref_variant, x, cache_dir)
    key = _cache_key(spec, ids, atol, rtol)
    record = Path(cache_dir).expanduser() / "verified" / f"{key}.json"
    if record.exists():
        return VerifyReport(pd.DataFrame(json.loads(record.read_text())), cached=record)
    rows, skipped = [], []
    for backend, precision in candidates(model, spec.variant.placement):
        if backend == ref_backend and precision == "fp32":
            continue
        variant = replace(spec.variant, backend=backend, precision=precision)
        try:
            session = BACKENDS.get(backend)().load(variant, cache_dir)
        except (ValueError, RuntimeError, MissingRuntimeError) as e:
            skipped.append(f"skip {backend}/{precision}: {e}")
            continue
        label = f"{backend}/{precision}"
        if session.precision_ran != precision:  # a silent fallback would read as perfect
            label += f" (ran {session.precision_ran})"
        out = infer_batched(session, x, 16)
        # Outputs pair by name, else by position (a converted model may rename them).
        names = list(ref) if set(ref) <= set(out) else None
        for k, name in enumerate(ref):
            mine = out[name] if names else list(out.values())[k]
            a, r = atol.get(name, atol["*"]), rtol.get(name, rtol["*"])
            rows.append(asdict(compare(ref[name], mine, ids, a, r, label, name)))
    table = pd.DataFrame(rows)
    if not table.empty and table.passed.all():
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(rows, indent=1))
    return VerifyReport(table, skipped)


def _outputs(backend: str, variant, x: np.ndarray, cache_dir: str) -> dict[str, np.ndarray]:
    return infer_batched(BACKENDS.get(backend)().load(variant, cache_dir), x, 16)


def _cache_key(spec, ids: list[str], atol: dict, rtol: dict) -> str:
    from evalharness.engine.versions import library_versions

    versions = library_versions()
    payload = [spec.variant.model.weights_sha256, spec.config_id, ids, atol, rtol, versions]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:12]
