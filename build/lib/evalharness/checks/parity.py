"""Where, stage by stage, two pipelines' tensors first diverge (`evalharness parity`).

    evalharness parity --a decoder=pil --b decoder=opencv --n 64
    evalharness parity --a decoder=pil --b decoder=torchvision \\
        --golden golden/ dataset=imagenet_val_1300 model=efficientnet_lite0

Both pipelines start from the base config (plus the shared overrides); --a and --b list the
overrides that make each one. After each stage (decode, resize, colour, normalize) it reports
max and mean absolute difference, PSNR, the share of differing values and, per sample, the
first stage that differs; then the model outputs of both (max |diff|, top-1 agreement).
--golden DIR writes one .npz per sample and pipeline (every stage's output, the final input
tensor and the model's logits), the reference a port in another language checks itself against.

`--decoders pil,opencv,kornia_rs,...` compares decoders pair by pair instead, on pixels and
through the model (parity_decoders.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.backends.base import BACKENDS
from evalharness.config.plan import RunSpec
from evalharness.config.runplan import plan_for
from evalharness.data.dataset import spread
from evalharness.engine.loop import infer_batched
from evalharness.preprocess.errors import StageError
from evalharness.preprocess.pipeline import Stage, pixels


def stage_outputs(stages: tuple[Stage, ...], path: Path) -> list[np.ndarray | str]:
    """Every stage's output for one sample; a failure ends the list with its reason."""
    outs: list[np.ndarray | str] = []
    x = path
    for stage in stages:
        try:
            x = stage(x)
        except StageError as e:
            outs.append(f"error: {e.reason}")
            break
        outs.append(pixels(x))  # a Frame's pixels: what the next stage and the model see
    return outs


def diff_stats(a, b) -> dict:
    """max/mean |a-b|, PSNR (peak 255 for uint8 images, else the range of a) and share differing."""
    if isinstance(a, str) or isinstance(b, str):
        return dict(comparable=False, note=a if isinstance(a, str) else b)
    if a.shape != b.shape:
        return dict(comparable=False, note=f"shape {a.shape} vs {b.shape}")
    if a.dtype != b.dtype:
        return dict(comparable=False, note=f"dtype {a.dtype} vs {b.dtype}")
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    peak = 255.0 if a.dtype == np.uint8 else float(max(np.ptp(a), 1e-12))
    mse = float((d**2).mean())
    psnr = float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)
    return dict(
        comparable=True,
        max_abs=float(d.max()),
        mean_abs=float(d.mean()),
        psnr=psnr,
        share_differing=float((d > 0).mean()),
        note="",
    )


def compare_pipelines(spec_a: RunSpec, spec_b: RunSpec, samples, golden: Path | None = None):
    rows, finals = [], {"a": [], "b": []}
    for s in samples:
        oa = stage_outputs(spec_a.stages, s.path)
        ob = stage_outputs(spec_b.stages, s.path)
        first = None
        for k, stage in enumerate(spec_a.stages):
            if k >= len(oa) or k >= len(ob):
                break
            st = diff_stats(oa[k], ob[k])
            same = st["comparable"] and st["max_abs"] == 0
            if first is None and not same:
                first = stage.kind
            rows.append(dict(sample_id=s.sample_id, stage=stage.kind, **st))
        rows.append(dict(sample_id=s.sample_id, stage="first_difference", note=first or "none"))
        finals["a"].append(oa[-1] if len(oa) == len(spec_a.stages) else None)
        finals["b"].append(ob[-1] if len(ob) == len(spec_b.stages) else None)
        if golden is not None:
            _write_golden(golden, s.sample_id, "a", spec_a, oa)
            _write_golden(golden, s.sample_id, "b", spec_b, ob)
    return pd.DataFrame(rows), finals


def _write_golden(folder: Path, sample_id: str, side: str, spec: RunSpec, outs) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        f"{st.kind}": o
        for st, o in zip(spec.stages, outs, strict=False)
        if isinstance(o, np.ndarray)
    }
    name = sample_id.replace("/", "_")
    np.savez_compressed(folder / f"{name}.{side}.npz", **arrays)


def model_outputs(spec: RunSpec, finals: list, cache_dir: str) -> dict[str, list] | None:
    """Every output of the model for every sample (one at a time where shapes differ)."""
    ok = [x for x in finals if x is not None]
    if not ok or len(ok) != len(finals):
        return None
    session = BACKENDS.get(spec.variant.backend)().load(spec.variant, cache_dir)
    out: dict[str, list] = {}
    for x in ok:
        for name, arr in infer_batched(session, x[None], 1).items():
            out.setdefault(name, []).append(arr[0])
    return out


def compare_outputs(la: dict[str, list], lb: dict[str, list]) -> list[str]:
    """Per output: max |diff| over samples (and, for (classes,) outputs, top-1 agreement)."""
    lines = []
    for (name, xa), xb in zip(la.items(), lb.values(), strict=False):
        if any(a.shape != b.shape for a, b in zip(xa, xb, strict=True)):
            lines.append(f"model output {name}: shapes differ between A and B")
            continue
        diff = max(
            float(np.abs(a.astype(np.float64) - b).max()) for a, b in zip(xa, xb, strict=True)
        )
        line = f"model output {name}: max |diff| {diff:.4g}"
        if xa[0].ndim == 1 or (xa[0].ndim == 3 and xa[0].shape[1:] == (1, 1)):
            agree = np.mean(
                [a.ravel().argmax() == b.ravel().argmax() for a, b in zip(xa, xb, strict=True)]
            )
            line += f", top-1 agreement {agree * 100:.1f}%"
        lines.append(line)
    return lines


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    stages = table[table.stage != "first_difference"]
    comparable = stages[stages.comparable.astype(bool)]
    agg = comparable.groupby("stage", sort=False).agg(
        samples=("sample_id", "count"),
        max_abs=("max_abs", "max"),
        mean_abs=("mean_abs", "mean"),
        psnr_min=("psnr", "min"),
        share_differing=("share_differing", "mean"),
        samples_differing=("max_abs", lambda s: int((s > 0).sum())),
    )
    not_comp = stages[~stages.comparable.astype(bool)].groupby("stage").size()
    agg["not_comparable"] = not_comp.reindex(agg.index).fillna(0).astype(int)
    return agg.reset_index()


@dataclass
class ParityReport:
    """Two pipelines on the same samples: per sample and stage, the summary per stage, the
    first stage that differs, and the models' outputs compared."""

    spec_a: RunSpec
    spec_b: RunSpec
    table: pd.DataFrame  # per sample x stage (+ a first_difference row per sample)
    stages: pd.DataFrame  # per stage: max/mean |diff|, PSNR, share differing
    first_differences: dict[str, int]  # stage -> samples that first differ there
    outputs: list[str] = field(default_factory=list)  # one line per model output


def parity(
    overrides: list[str], a: list[str], b: list[str], n: int, golden: Path | None = None
) -> ParityReport:
    """Pipelines A (base + `a` overrides) and B (base + `b`) on n samples spread over the set;
    `golden` writes every stage's output and the model outputs as .npz per sample."""
    base = ["progress=false", *overrides]
    plan_a, plan_b = plan_for([*base, *a]), plan_for([*base, *b])
    spec_a, spec_b = plan_a.specs[0], plan_b.specs[0]
    samples = spread(plan_a.dataset.samples, n)
    table, finals = compare_pipelines(spec_a, spec_b, samples, golden)
    firsts = table[table.stage == "first_difference"].note.value_counts()
    report = ParityReport(spec_a, spec_b, table, summarize(table), firsts.to_dict())
    cache_dir = plan_a.options.cache_dir
    la = model_outputs(spec_a, finals["a"], cache_dir)
    lb = model_outputs(spec_b, finals["b"], cache_dir)
    if la is not None and lb is not None:
        report.outputs = compare_outputs(la, lb)
        if golden:
            for side, outs in (("a", la), ("b", lb)):
                for k, s in enumerate(samples):
                    name = s.sample_id.replace("/", "_")
                    arrays = {o: v[k] for o, v in outs.items()}
                    np.savez_compressed(golden / f"{name}.{side}.outputs.npz", **arrays)
    return report
