"""Exports checked against the model on real samples: the library behind `evalharness verify`.

Every variant's logits are compared with the reference (torch fp32, or onnxruntime fp32 for a
model that is only a file) on the model card's reference inputs, with Polygraphy's rule: an
element fails only when |a - b| > atol AND |a - b| > rtol * |ref|; a NaN or Inf always fails.
Image-to-image models are run as the sweep runs them (the task's session: one image at a
time, its own size, the output guard), their images flattened into one vector per sample; an
image a runtime cannot produce is NaN and fails. Top-1 agreement is for tasks whose samples
have a class label; other tasks' rows leave it empty. Tolerances are per
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
        runs = any(s in caps.sources for s in model.sources)
        if not runs or placement not in caps.placements:
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
    top1: bool = True,
) -> OutputComparison:
    ref = ref.reshape(len(ref), -1)
    out = out.reshape(len(out), -1)
    with np.errstate(invalid="ignore"):
        diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
        rel = diff / np.maximum(np.abs(ref), 1e-12)
        fails = ((diff > atol) & (diff > rtol * np.abs(ref))) | ~np.isfinite(diff)
    diff = np.where(np.isfinite(diff), diff, np.inf)
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
        top1_agreement=float((out.argmax(1) == ref.argmax(1)).mean() * 100) if top1 else np.nan,
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
    any_size = spec.variant.model.input_hw is None  # a fully convolutional image model
    if len({f.pixels.shape for f in frames}) > 1 and not any_size:
        raise ValueError("verify needs one input size: use a fixed-size resize policy")
    x = [f.pixels for f in frames]
    ids = [s.sample_id for s in samples]
    cache_dir = plan.options.cache_dir
    model = spec.variant.model
    task = plan.task
    ref_backend = spec.variant.backend  # the card's reference: the first runtime (by rank)
    ref_variant = replace(spec.variant, backend=ref_backend, precision="fp32")
    ref = _outputs(task, ref_variant, x, cache_dir)
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
            session = _session(task, variant, cache_dir)
        except (ValueError, RuntimeError, MissingRuntimeError) as e:
            skipped.append(f"skip {backend}/{precision}: {e}")
            continue
        label = f"{backend}/{precision}"
        if session.precision_ran != precision:  # a silent fallback would read as perfect
            label += f" (ran {session.precision_ran})"
        out = _infer(session, x)
        # Outputs pair by name, else by position (a converted model may rename them).
        names = list(ref) if set(ref) <= set(out) else None
        for k, name in enumerate(ref):
            mine = out[name] if names else list(out.values())[k]
            a, r = atol.get(name, atol["*"]), rtol.get(name, rtol["*"])
            row = compare(ref[name], mine, ids, a, r, label, name, top1=task.labelled)
            rows.append(asdict(row))
    table = pd.DataFrame(rows)
    if not table.empty and table.passed.all():
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(rows, indent=1))
    return VerifyReport(table, skipped)


def _session(task, variant, cache_dir: str):
    """The variant as the sweep runs it: the backend's session, wrapped by the task."""
    return task.wrap_session(BACKENDS.get(variant.backend)().load(variant, cache_dir), variant)


def _infer(session, x: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Float outputs per sample, one row each: a batch when every input has one size,
    else one sample at a time with each output flattened (an image model's outputs
    differ in size from image to image). Non-float outputs (a task's error notes) are
    left out: a failed image is NaN in its float output and fails there."""
    if len({t.shape for t in x}) == 1:
        out = infer_batched(session, np.stack(x), 16)
    else:
        parts = [infer_batched(session, t[None], 1) for t in x]
        out = {}
        for name in (n for n, v in parts[0].items() if np.asarray(v).dtype.kind == "f"):
            rows = [p[name].reshape(-1) for p in parts]
            width = max(len(r) for r in rows)
            out[name] = np.stack([np.pad(r, (0, width - len(r))) for r in rows])
    return {k: v for k, v in out.items() if np.asarray(v).dtype.kind == "f"}


def _outputs(task, variant, x: list[np.ndarray], cache_dir: str) -> dict[str, np.ndarray]:
    return _infer(_session(task, variant, cache_dir), x)


def _cache_key(spec, ids: list[str], atol: dict, rtol: dict) -> str:
    from evalharness.engine.versions import library_versions

    versions = library_versions()
    payload = [spec.variant.model.weights_sha256, spec.config_id, ids, atol, rtol, versions]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:12]
