"""Engine vs naive loop vs the two floors, on the same sweep and data, side by side in one run.

- engine:           `run_sweep` as the app runs it (trie walk, inference dedup, workers).
- naive:            each config on its own, as one validate script per config does: load the
                    variant, then decode -> resize -> colour -> normalize -> infer every sample.
- per_config_floor: the unavoidable work of the old engine, back to back on one thread: each
                    unique stage output once for the whole dataset, then every config's
                    inference of its tensors, one config after another.
- unique_floor:     each unique stage output once, then each *unique* host tensor inferred
                    once per model variant, one after another on one thread.
Both floors use the same backend thread count as the engine (`threads`); the engine may also
use `workers` threads in parallel, which is its point. CPU utilisation is the engine run's
process CPU time over its wall time.

    python benchmarks/sweep_vs_naive.py                        # demo, preproc_ablation (72)
    python benchmarks/sweep_vs_naive.py model=efficientnet_lite0 dataset=imagenet_val_1300 \\
        +sweep=imagenet_24                                       # 24 configs on onnxruntime

Arguments are Hydra overrides; `+sweep=preproc_ablation` is added unless one is given.
`BENCH_REPEATS` (default 2): engine and floors alternate, best of that many each.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import xxhash

from evalharness.config.compose import prepare_run
from evalharness.engine.infer import infer_batched
from evalharness.engine.loop import load_sessions, run_sweep
from evalharness.preprocess.errors import StageError
from evalharness.preprocess.pipeline import run_pipeline
from evalharness.runner.run import sweep_options


def compose_run(overrides: list[str]):
    if not any(o.lstrip("+").startswith("sweep=") for o in overrides):
        overrides = ["+sweep=preproc_ablation", *overrides]
    return prepare_run(["progress=false", *overrides])


def time_engine(cfg, specs, dataset, task) -> tuple[float, dict]:
    opts = sweep_options(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = run_sweep(specs, dataset, Path(tmp), opts, task)
        return time.perf_counter() - t0, stats


def _or_none(fn, x):
    """A failed sample is skipped, as both the engine and a validate script skip it."""
    try:
        return fn(x)
    except StageError:
        return None


def time_naive(cfg, specs, dataset, task) -> float:
    t0 = time.perf_counter()
    for spec in specs:
        session = load_sessions([spec], task, dataset, str(cfg.cache_dir))[spec.variant]
        for c in range(0, len(dataset), int(cfg.chunk_size)):
            chunk = dataset.samples[c : c + int(cfg.chunk_size)]
            xs = [
                x.pixels
                for x in (_or_none(partial(run_pipeline, spec.stages), s.path) for s in chunk)
                if x is not None
            ]
            if xs:
                infer_batched(session, np.stack(xs), int(cfg.batch_size))
    return time.perf_counter() - t0


def unique_outputs(specs, samples) -> dict:
    """Each unique prefix once over the samples (no orchestration, one thread)."""
    outputs: dict[tuple, list] = {}
    for spec in specs:
        for k in range(len(spec.stages)):
            prefix = spec.stages[: k + 1]
            if prefix in outputs:
                continue
            parent = [s.path for s in samples] if k == 0 else outputs[prefix[:-1]]
            stage = prefix[-1]
            outputs[prefix] = [None if x is None else _or_none(stage, x) for x in parent]
    return outputs


def time_floors(cfg, specs, dataset, task) -> tuple[float, float]:
    """(per_config_floor, unique_floor) seconds, preprocessing shared by both. Chunk by
    chunk (chunk_size samples), as the engine holds them: the whole of imagenet-val-1300's
    unique host tensors at once is 22 GB."""
    batch, size = int(cfg.batch_size), int(cfg.chunk_size)
    t0 = time.perf_counter()
    sessions = load_sessions(specs, task, dataset, str(cfg.cache_dir))
    prep = time.perf_counter() - t0
    per_config = unique = 0.0
    for c in range(0, len(dataset), size):
        t0 = time.perf_counter()
        outputs = unique_outputs(specs, dataset.samples[c : c + size])
        prep += time.perf_counter() - t0
        t0 = time.perf_counter()
        for spec in specs:  # every config's inference, one after another
            xs = [x.pixels for x in outputs[spec.stages] if x is not None]
            if xs:
                infer_batched(sessions[spec.variant], np.stack(xs), batch)
        per_config += time.perf_counter() - t0
        t0 = time.perf_counter()
        by_variant: dict = {}
        for spec in specs:  # each unique tensor once per variant (hashing included)
            seen = by_variant.setdefault(spec.variant, {})
            for x in outputs[spec.stages]:
                if x is not None:
                    t = x.pixels
                    seen.setdefault((t.shape, t.dtype.str, xxhash.xxh3_128_digest(t)), t)
        for variant, seen in by_variant.items():
            groups: dict = {}
            for t in seen.values():
                groups.setdefault(t.shape, []).append(t)
            for ts in groups.values():
                infer_batched(sessions[variant], np.stack(ts), batch)
        unique += time.perf_counter() - t0
    return prep + per_config, prep + unique


def main(overrides: list[str]) -> None:
    cfg, specs, dataset, task = compose_run(overrides)
    load_sessions(specs, task, dataset, str(cfg.cache_dir))  # exports cached: fair start
    opts = sweep_options(cfg)
    print(
        f"{len(specs)} configs x {len(dataset)} samples ({dataset.name}, {cfg.model.name}), "
        f"threads={cfg.threads} per batch, engine workers={opts.workers}, cores="
        f"{len(os.sched_getaffinity(0))}"
    )
    repeats = int(os.environ.get("BENCH_REPEATS", "2"))
    per_config = unique = engine = float("inf")
    stats: dict = {}
    for _ in range(repeats):  # alternate, best of `repeats` each: no one pays warm-up alone
        pc, un = time_floors(cfg, specs, dataset, task)
        per_config, unique = min(per_config, pc), min(unique, un)
        e, st = time_engine(cfg, specs, dataset, task)
        if e < engine:
            engine, stats = e, st
    naive = (
        time_naive(cfg, specs, dataset, task) if os.environ.get("BENCH_NAIVE", "1") == "1" else None
    )
    print(f"per_config_floor {per_config:8.1f} s")
    print(f"unique_floor     {unique:8.1f} s")
    print(f"engine           {engine:8.1f} s")
    if naive is not None:
        print(f"naive            {naive:8.1f} s")
    print(f"engine/per_config_floor = {engine / per_config:.3f}")
    print(f"engine/unique_floor = {engine / unique:.3f}")
    if naive is not None:
        print(f"naive/engine = {naive / engine:.2f}")
    print(f"infer_unique/infer_requested = {stats['infer_unique']}/{stats['infer_requested']} "
          f"= {stats['infer_unique'] / max(1, stats['infer_requested']):.3f}")  # fmt: skip
    print(f"engine cpu_utilisation = {stats['cpu_utilisation']:.2f} cores "
          f"(cpu {stats['cpu_seconds']:.1f} s / wall {stats['wall_seconds']:.1f} s)")  # fmt: skip
    print(json.dumps({k: v for k, v in stats.items() if k.endswith("_seconds")}))


if __name__ == "__main__":
    main(sys.argv[1:])
