"""Engine vs naive loop vs floor, on the same sweep and data, measured side by side in one run.

- engine: `run_sweep` as the app runs it (streaming chunks, prefix memo, part files).
- naive:  each config on its own, as one validate script per config does: load the model
          variant, then decode -> resize -> colour -> normalize -> infer every sample, using
          the same stage code.
- floor:  only the unavoidable work, back to back, no orchestration: each unique stage output
          computed once for the whole dataset (one decode per (sample, decoder), one resize per
          unique (decoder, resize), ...), each variant loaded once, and inference of every
          config on ready tensors.

    python benchmarks/sweep_vs_naive.py                        # demo, preproc_ablation (72)
    python benchmarks/sweep_vs_naive.py dataset=cifar10_test dataset.limit=2000

Arguments are Hydra overrides; `+sweep=preproc_ablation` is added unless one is given.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from evalharness.compose import prepare_run
from evalharness.engine.loop import load_sessions, run_sweep
from evalharness.engine.options import SweepOptions
from evalharness.preprocess.errors import StageError
from evalharness.preprocess.pipeline import run_pipeline


def compose_run(overrides: list[str]):
    if not any(o.lstrip("+").startswith("sweep=") for o in overrides):
        overrides = ["+sweep=preproc_ablation", *overrides]
    return prepare_run(["progress=false", *overrides])


def time_engine(cfg, specs, dataset, task) -> float:
    opts = SweepOptions(int(cfg.chunk_size), int(cfg.batch_size), str(cfg.cache_dir), False)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_sweep(specs, dataset, Path(tmp), opts, task)
        return time.perf_counter() - t0


def _infer_all(session, x: np.ndarray, batch_size: int) -> None:
    for b in range(0, len(x), batch_size):
        session.infer(x[b : b + batch_size])


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
                _infer_all(session, np.stack(xs), int(cfg.batch_size))
    return time.perf_counter() - t0


def time_floor(cfg, specs, dataset, task) -> float:
    t0 = time.perf_counter()
    sessions = load_sessions(specs, task, dataset, str(cfg.cache_dir))
    outputs: dict[tuple, list] = {}
    for spec in specs:  # each unique prefix once, over the whole dataset
        for k in range(len(spec.stages)):
            prefix = spec.stages[: k + 1]
            if prefix in outputs:
                continue
            parent = [s.path for s in dataset.samples] if k == 0 else outputs[prefix[:-1]]
            stage = prefix[-1]
            outputs[prefix] = [None if x is None else _or_none(stage, x) for x in parent]
    for spec in specs:
        xs = [x.pixels for x in outputs[spec.stages] if x is not None]
        _infer_all(sessions[spec.variant], np.stack(xs), int(cfg.batch_size))
    return time.perf_counter() - t0


def main(overrides: list[str]) -> None:
    cfg, specs, dataset, task = compose_run(overrides)
    load_sessions(specs, task, dataset, str(cfg.cache_dir))  # exports cached: fair start
    print(f"{len(specs)} configs x {len(dataset)} samples ({dataset.name}), 1 thread per backend")
    # Floor and engine alternate, best of `repeats` each, so neither pays the warm-up alone.
    repeats = int(os.environ.get("BENCH_REPEATS", "2"))
    floor, engine = float("inf"), float("inf")
    for _ in range(repeats):
        floor = min(floor, time_floor(cfg, specs, dataset, task))
        engine = min(engine, time_engine(cfg, specs, dataset, task))
    naive = time_naive(cfg, specs, dataset, task)
    print(f"floor  {floor:8.1f} s")
    print(f"engine {engine:8.1f} s")
    print(f"naive  {naive:8.1f} s")
    print(f"engine/floor = {engine / floor:.3f}   naive/engine = {naive / engine:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
