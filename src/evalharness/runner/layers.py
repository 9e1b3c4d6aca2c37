"""`layers` on a run dir: where in the network configs A and B part, on the images that flip.

From the run's predictions, the images whose outcome differs between A and B (up to `n`)
and as many where they agree (the control) are taken; each config's own plan gives its host
tensors (its own preprocessing: an (A, B) pair when they differ) and, for int8, its own
calibration tensors, so the model files are the very ones the sweep ran (cached by content,
nothing is quantized again). Each backend builds its probe (`Backend.layer_probe`); the
comparison itself is evalharness.layerwise. Only the selected images run: minutes, not a
sweep.

`try_exclude=K` is the fix, measured: the int8 side (both, when both are int8) is planned
again with the setting `precision.exclude` naming the nodes of the K layers whose own step
adds the most error, evaluated on the whole dataset by the normal engine (a derived model,
cached by content; a normal config in RUN_DIR/layers/ondemand/<hash>/), and compared with A
and B image by image (paired intervals).

Everything lands in RUN_DIR/layers/<A>_vs_<B>-<hash>/: layers.csv (per layer, graph
order), images.csv, first_divergence.csv, unmatched.csv, exclude.csv, two plots and
layers.json (the verdict and every figure the command prints). The report reads them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalharness.analysis.explain import check_factors, setting_keys_as_columns
from evalharness.analysis.results import RunResults, reference_config, run_dataset
from evalharness.backends.base import BACKENDS
from evalharness.backends.quantize import EXCLUDE
from evalharness.engine.calibration import tensors
from evalharness.layerwise import LayerDivergence, LayerGraph, layer_divergence, nodes_for_layers
from evalharness.layerwise.deploy import ObservedProbe, observer_safe_probe, reference_onnx
from evalharness.preprocess.errors import StageError
from evalharness.preprocess.pipeline import run_pipeline
from evalharness.report.layers import error_vs_depth_png, first_divergence_png
from evalharness.runner.ondemand import RunDirConfigs
from evalharness.stats.intervals import wilson_interval
from evalharness.stats.paired import bootstrap_ci, bootstrap_indices, compare_values

log = logging.getLogger("evalharness")

FOLDER = "layers"
EXCLUDE_SETTING = {EXCLUDE: f"precision.{EXCLUDE}"}  # column -> the sweep key it sets


@dataclass(frozen=True)
class Side:
    """One config as the comparison runs it."""

    config: dict[str, str]
    config_id: str
    label: str  # the factors where it differs from the other side
    observed: ObservedProbe
    runtime: str


@dataclass
class ExcludeOutcome:
    """The re-quantized config(s), evaluated on the whole dataset, against A and B."""

    k: int
    layers: list[str]
    nodes: list[str]
    configs: dict[str, dict[str, str]]  # "A'" / "B'" -> the new config
    table: pd.DataFrame  # one row per (new config, against)
    summary: pd.DataFrame  # the new configs' summary rows (metric, agree_ref with intervals)

    def lines(self, metric: str) -> list[str]:
        out = [f"--try-exclude {self.k}: kept in float {', '.join(self.layers)}",
               f"  nodes: {' '.join(self.nodes)}"]  # fmt: skip
        for name, row in self.summary.iterrows():
            side = str(name).rstrip("'")
            out.append(
                f"  {name} = {side} with exclude ({len(self.nodes)} nodes): {metric} "
                f"{row[metric]:.2f} [{row[f'{metric}_lo']:.2f}, {row[f'{metric}_hi']:.2f}], "
                f"agree_ref {row['agree_ref']:.2f} "
                f"[{row['agree_ref_lo']:.2f}, {row['agree_ref_hi']:.2f}]"
            )
        for r in self.table.itertuples():
            before = "" if pd.isna(r.flips_before) else (
                f" (was {int(r.flips_before)}; change {r.change:+.0f} "
                f"[{r.change_lo:+.1f}, {r.change_hi:+.1f}])"
            )  # fmt: skip
            out.append(
                f"  {r.new} vs {r.against}: {metric} {r.delta:+.2f} [{r.delta_lo:+.2f}, "
                f"{r.delta_hi:+.2f}], flips {int(r.flips)} of {int(r.n)}{before}"
            )
        return out


@dataclass
class LayersRun:
    """What `evalharness layers` prints and `Results.layers()` returns."""

    a: dict[str, str]
    b: dict[str, str]
    result: LayerDivergence
    out_dir: Path
    n_images: int  # images the run scored
    n_flips: int  # of them, outcome differs between A and B
    flipped_ids: list[str]
    control_ids: list[str]
    sides: tuple[Side, Side]
    reproduced: tuple[int, int] | None  # probes' top-1 = the run's on k of n (classification)
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)
    exclude: ExcludeOutcome | None = None
    metric: str = "top1"

    @property
    def verdict(self) -> str:
        return self.result.verdict


def _describe(config: dict[str, str], other: dict[str, str] | None = None) -> str:
    keys = [k for k in config if other is None or other.get(k) != config[k]]
    return " ".join(f"{k}={config[k]}" for k in keys)


def _tag(a: dict[str, str], b: dict[str, str]) -> str:
    """A folder name a person can read (the differing values), unique by a hash of both."""

    def short(cfg, other):
        vals = [cfg[k] for k in cfg if other.get(k) != cfg[k] or k in ("backend", "precision")]
        return "-".join(vals)

    digest = hashlib.sha256(json.dumps([a, b], sort_keys=True).encode()).hexdigest()[:6]
    name = f"{short(a, b)}_vs_{short(b, a)}-{digest}"
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", name)


def _pick(indices: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(indices) <= n:
        return indices
    return np.sort(rng.choice(indices, size=n, replace=False))


def _host(spec, samples) -> tuple[np.ndarray, list[int]]:
    """The config's own host tensors of these samples (float32), and the positions that
    could be preprocessed (a sample the pipeline rejects is an error row in the run too)."""
    arrays, kept = [], []
    for i, s in enumerate(samples):
        try:
            arrays.append(np.asarray(run_pipeline(spec.stages, s.path).pixels, np.float32))
        except StageError:
            continue
        kept.append(i)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(
            f"layers compares one host tensor size per config; this config's preprocessing "
            f"gives {len(shapes)} sizes ({sorted(shapes)[:3]}...)"
        )
    return (np.stack(arrays) if arrays else np.zeros((0,))), kept


def _probe_source(spec, plan, calibration_cache: dict):
    backend = BACKENDS.get(spec.variant.backend)()
    if not backend.capabilities.probes:
        able = sorted(n for n, c in BACKENDS.items() if c.capabilities.probes)
        raise ValueError(
            f"backend '{spec.variant.backend}' cannot expose intermediate tensors; layers "
            f"probes {', '.join(able)}"
        )
    calib = None
    if spec.variant.option("calibrate") and plan.calibration is not None:
        key = spec.stages
        if key not in calibration_cache:
            calibration_cache[key] = tensors(spec, list(plan.calibration.samples))
        calib = calibration_cache[key]
    return backend.layer_probe(spec.variant, plan.options.cache_dir, calib)


def run_layers(
    run_dir: str | Path,
    a: dict[str, Any] | None = None,
    b: dict[str, Any] | None = None,
    *,
    n: int = 64,
    threshold: float = 0.05,
    try_exclude: int = 0,
    seed: int = 0,
    n_boot: int = 2000,
) -> LayersRun:
    """Layer by layer, A against B on their flipped and control images (see the module).

    A is the model card's reference with `a`'s factors changed; B is A with `b`'s (as in
    explain). Raises ValueError for what the command reports as one `error:` line.
    """
    run_dir = Path(run_dir)
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(what: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[what] = round(now - clock, 2)
        clock = now

    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    a = {k: str(v) for k, v in (a or {}).items()}
    b = {k: str(v) for k, v in (b or {}).items()}
    if not b:
        raise ValueError("name B's factors (--b backend=openvino ...): B is A with them changed")
    dataset = run_dataset(run_dir)
    res = RunResults.load(run_dir, dataset)
    a, b = setting_keys_as_columns(a, res), setting_keys_as_columns(b, res)
    check_factors({**a, **b}, res)
    a_cfg = {**reference_config(run_dir, res), **a}
    b_cfg = {**a_cfg, **b}
    if a_cfg == b_cfg:
        raise ValueError(f"A and B are the same config ({_describe(a_cfg)})")
    configs = RunDirConfigs(run_dir)
    ids = []
    for cfg in (a_cfg, b_cfg):
        cid = res.find(cfg)
        if cid is None:
            res = res.merged(configs.evaluate([cfg]))
            cid = res.find(cfg)
        ids.append(cid)
    task = res.task
    agree = task.agree(res.records[ids[0]], res.records[ids[1]])
    rng = np.random.default_rng(seed)
    flipped = _pick(np.flatnonzero(~agree), n, rng)
    control = _pick(np.flatnonzero(agree), n, rng)
    lap("results")

    (plan_a, spec_a), (plan_b, spec_b) = configs.planned(a_cfg), configs.planned(b_cfg)
    by_id = {s.sample_id: s for s in plan_a.dataset.samples}
    chosen = [res.sample_ids[i] for i in np.concatenate([flipped, control])]
    samples = [by_id[sid] for sid in chosen]
    xa, kept_a = _host(spec_a, samples)
    same_input = spec_a.stages == spec_b.stages
    xb, kept_b = (xa, kept_a) if same_input else _host(spec_b, samples)
    kept = sorted(set(kept_a) & set(kept_b))
    notes = []
    if len(kept) < len(samples):
        notes.append(f"{len(samples) - len(kept)} selected image(s) fail to preprocess: left out")
    pos_a = {p: i for i, p in enumerate(kept_a)}
    pos_b = {p: i for i, p in enumerate(kept_b)}
    xa = xa[[pos_a[p] for p in kept]] if kept else xa
    xb = xb[[pos_b[p] for p in kept]] if kept else xb
    n_flip = sum(1 for p in kept if p < len(flipped))
    chosen = [chosen[p] for p in kept]
    lap("host tensors")

    calibration: dict = {}
    sources = [_probe_source(s, p, calibration) for s, p in ((spec_a, plan_a), (spec_b, plan_b))]
    graph = LayerGraph.from_onnx(reference_onnx(*sources))
    lap("models")
    labels = (_describe(a_cfg, b_cfg), _describe(b_cfg, a_cfg))
    observed = [
        observer_safe_probe(src, graph.layers, x, label=label)
        for src, x, label in zip(sources, (xa, xb), labels, strict=True)
    ]
    for side, ob in zip("AB", observed, strict=True):
        if ob.mode != "all":
            notes.append(
                f"{side} ({ob.probe.runtime}): exposing every tensor at once moved the outputs "
                f"({ob.first_check.describe()}); one model per tensor instead"
            )
    lap("probes and observer check")
    batch = min(ob.batch_size for ob in observed)
    pair = (lambda x, y: x) if same_input else (lambda x, y: (x, y))
    result = layer_divergence(
        observed[0].probe,
        observed[1].probe,
        pair(xa[:n_flip], xb[:n_flip]),
        pair(xa[n_flip:], xb[n_flip:]),
        graph,
        threshold=threshold,
        batch_size=batch,
        top_k=max(5, try_exclude),
        labels=labels,
    )
    lap("layer divergence")
    sides = (
        Side(a_cfg, ids[0], labels[0], observed[0], sources[0].runtime),
        Side(b_cfg, ids[1], labels[1], observed[1], sources[1].runtime),
    )
    out = LayersRun(
        a=a_cfg,
        b=b_cfg,
        result=result,
        out_dir=run_dir / FOLDER / _tag(a_cfg, b_cfg),
        n_images=len(res.sample_ids),
        n_flips=int((~agree).sum()),
        flipped_ids=chosen[:n_flip],
        control_ids=chosen[n_flip:],
        sides=sides,
        reproduced=_reproduced(res, ids, chosen, result),
        seconds=seconds,
        notes=notes,
        metric=res.metric,
    )
    if try_exclude:
        out.exclude = _try_exclude(run_dir, res, out, graph, try_exclude, n_boot)
        lap("try-exclude")
    write(out)
    return out


def _reproduced(res: RunResults, ids, chosen: list[str], result: LayerDivergence):
    """Classification: on how many analysed images both probes' plain top-1 equal the run's
    predictions (the probe runs what the sweep ran)."""
    if res.task.name != "classification":
        return None
    position = {sid: i for i, sid in enumerate(res.sample_ids)}
    idx = np.array([position[s] for s in chosen], dtype=int)
    images = result.images  # flipped rows, then control rows: the order of `chosen`
    same = np.ones(len(idx), bool)
    for cid, col in zip(ids, ("top1_a", "top1_b"), strict=True):
        same &= res.records[cid].pred[idx] == images[col].to_numpy()
    return int(same.sum()), len(idx)


def _try_exclude(run_dir: Path, res: RunResults, run: LayersRun, graph: LayerGraph, k: int,
                 n_boot: int) -> ExcludeOutcome:  # fmt: skip
    """Re-quantize the int8 side(s) with the top-k added-error layers kept in float,
    evaluate on the whole dataset, compare with A and B (paired, image by image)."""
    quantized = [s for s in run.sides if _has_exclude(run_dir, s.config)]
    if not quantized:
        raise ValueError(
            "--try-exclude re-quantizes: neither A nor B has a precision with an exclude "
            "setting (int8_ort, int8_nncf)"
        )
    table = run.result.table
    top = [name for name, _ in run.result.top_added[:k]]
    nodes = nodes_for_layers(graph, top, table.index)
    value = " ".join(nodes)
    source = RunDirConfigs(run_dir, run_dir / FOLDER, EXCLUDE_SETTING)
    new: dict[str, dict[str, str]] = {}
    new_res: dict[str, RunResults] = {}
    for name, side in zip(("A'", "B'"), run.sides, strict=True):
        if side in quantized:
            new[name] = {**side.config, EXCLUDE: value}
            got = source.evaluate([new[name]])
            if got is None or got.sample_ids != res.sample_ids:
                raise ValueError("the re-quantized config was not scored on the run's images")
            new_res[name] = got
    idx = bootstrap_indices(len(res.sample_ids), n_boot)
    base = {"A": run.sides[0].config_id, "B": run.sides[1].config_id}
    rows = []
    for name, got in new_res.items():
        cid = str(got.summary.config_id.iloc[0])
        others = [(o, res, base[o]) for o in ("A", "B")]
        if name == "A'" and "B'" in new_res:  # both re-quantized: do they part less now?
            others.append(("B'", new_res["B'"], str(new_res["B'"].summary.config_id.iloc[0])))
        for against, ores, oid in others:
            rows.append(_against(res, got, cid, name, ores, oid, against, base, idx))
    summary = pd.concat(
        [r.summary.set_index(pd.Index([n])) for n, r in new_res.items()]
    )[[res.metric, f"{res.metric}_lo", f"{res.metric}_hi", "agree_ref", "agree_ref_lo",
       "agree_ref_hi", "config_id"]]  # fmt: skip
    return ExcludeOutcome(k, top, nodes, new, pd.DataFrame(rows), summary)


def _has_exclude(run_dir: Path, config: dict[str, str]) -> bool:
    """Whether the config's precision option has the exclude setting (declared in its file)."""
    from evalharness.config.compose import store_for
    from evalharness.rundir.read import run_user_dirs

    return EXCLUDE in store_for(run_user_dirs(run_dir)).load("precision", config["precision"])


def _against(res, got, cid, name, ores, oid, against, base, idx) -> dict[str, Any]:
    """One row: the new config against another, paired on the same images; for A and for
    the other new config, how the flips changed from the pair it replaces (bootstrap of the
    per-image difference: a paired interval, in images)."""
    task = res.task
    va, vb = ores.values(oid, idx), got.values(cid, idx)
    pair = compare_values(va, vb, ores.scores(oid), got.scores(cid), res.sample_ids)
    differs = ~task.agree(ores.records[oid], got.records[cid])
    n = len(differs)
    lo, hi = wilson_interval(int(differs.sum()), n)
    row = dict(new=name, against=against, n=n, metric=float(vb[0]), other=float(va[0]),
               delta=pair.delta, delta_lo=pair.delta_lo, delta_hi=pair.delta_hi,
               worse=pair.right_to_wrong, better=pair.wrong_to_right, p_mcnemar=pair.p_mcnemar,
               flips=int(differs.sum()), flips_lo=float(lo) * n, flips_hi=float(hi) * n,
               flips_before=np.nan, change=np.nan, change_lo=np.nan, change_hi=np.nan)  # fmt: skip
    # the pair this one replaces: B' vs A replaces B vs A; A' vs B replaces A vs B; A' vs B'
    # replaces A vs B; a new config against its own old self replaces nothing
    replaced = {("B'", "A"), ("A'", "B"), ("A'", "B'")}
    if (name, against) in replaced:
        old = ~task.agree(res.records[base["A"]], res.records[base["B"]])
        d = differs.astype(float) - old.astype(float)
        c_lo, c_hi = bootstrap_ci(d, idx)
        row.update(flips_before=int(old.sum()), change=float(d.sum()),
                   change_lo=c_lo * n, change_hi=c_hi * n)  # fmt: skip
    return row


def write(run: LayersRun) -> list[Path]:
    """RUN_DIR/layers/<A>_vs_<B>-<hash>/: the tables, the plots, layers.json."""
    out = run.out_dir
    out.mkdir(parents=True, exist_ok=True)
    r = run.result
    files = {
        "layers.csv": r.table.reset_index(),
        "first_divergence.csv": pd.DataFrame(
            {
                "layer": r.first_divergence.index,
                "flipped": r.first_divergence.to_numpy(),
                "control": r.first_divergence_control.to_numpy(),
            }
        ),  # fmt: skip
        "images.csv": r.images.assign(sample_id=run.flipped_ids + run.control_ids),
        "unmatched.csv": pd.DataFrame(
            [("A", t, why) for t, why in r.unmatched_a.items()]
            + [("B", t, why) for t, why in r.unmatched_b.items()],
            columns=["side", "tensor", "reason"],
        ),
    }
    if run.exclude is not None:
        files["exclude.csv"] = run.exclude.table
    written = []
    for name, frame in files.items():
        frame.to_csv(out / name, index=False)
        written.append(out / name)
    pngs = {
        "error_vs_depth.png": error_vs_depth_png(r.table, r.parting_layer, r.threshold),
        "first_divergence.png": first_divergence_png(r.table),
    }
    for name, png in pngs.items():
        (out / name).write_bytes(png)
        written.append(out / name)
    (out / "layers.json").write_text(json.dumps(record(run), indent=1, default=str))
    written.append(out / "layers.json")
    return written


def record(run: LayersRun) -> dict[str, Any]:
    """layers.json: what the command printed, for the report and for a person later."""
    r = run.result
    t = r.table

    def where(layer: str | None):
        if layer is None:
            return None
        return {"layer": layer, "op": t.at[layer, "step"], "depth": int(t.at[layer, "depth"])}

    rec: dict[str, Any] = {
        "a": run.a,
        "b": run.b,
        "labels": [r.a, r.b],
        "verdict": r.verdict,
        "threshold": r.threshold,
        "layers": len(t),
        "parting": where(r.parting_layer),
        "first_difference": where(r.first_difference),
        "separates": where(r.contrast_layer()),
        "top_added": [{"layer": n, "added": v} for n, v in r.top_added],
        "n_images": run.n_images,
        "n_flips": run.n_flips,
        "n_flipped": r.n_flipped,
        "n_control": r.n_control,
        "observer": r.observer_lines(),
        "observer_max_abs": [c.max_abs_diff for c in r.observer],
        "observer_top1_changed": [c.top1_changed for c in r.observer],
        "modes": [s.observed.mode for s in run.sides],
        "runtimes": [s.runtime for s in run.sides],
        "unmatched": [len(r.unmatched_a), len(r.unmatched_b)],
        "reproduced": run.reproduced,
        "seconds": run.seconds,
        "notes": run.notes,
        "metric": run.metric,
    }
    if run.exclude is not None:
        rec["exclude"] = {
            "k": run.exclude.k,
            "layers": run.exclude.layers,
            "nodes": run.exclude.nodes,
            "configs": run.exclude.configs,
            "lines": run.exclude.lines(run.metric),
        }
    return rec
