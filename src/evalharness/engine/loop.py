"""The one evaluation loop: stream chunks of samples through every config, sharing prefixes.

For each chunk, a config's host pipeline is a tuple of stages; the memo maps a stage
*prefix* to that prefix's outputs for the chunk, so a decode shared by 24 configs runs once
and a host tensor shared by three backends is stacked once. The memo lives for one chunk
only: memory stays bounded whatever the dataset size. Each finished chunk is written as its
own part file before the next starts, so an interruption loses at most one chunk.

The loop knows nothing of labels or metrics: the task (tasks/base.py) turns each batch's
named outputs, with the Geometry every sample's pixels went through, into prediction rows.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from evalharness.backends import BACKENDS
from evalharness.backends.base import ModelVariant, Session
from evalharness.data.dataset import Dataset, Sample
from evalharness.engine import store
from evalharness.engine.options import SweepOptions, shard_chunks, stable_hash
from evalharness.engine.plan import RunSpec
from evalharness.preprocess.errors import StageError
from evalharness.preprocess.geometry import Frame
from evalharness.preprocess.pipeline import Stage
from evalharness.tasks.base import Task


@dataclass(frozen=True)
class Failure:
    stage: str
    reason: str


@dataclass
class Counters:
    """Work actually done: the proof that shared prefixes were computed once."""

    calls: Counter = field(default_factory=Counter)
    seconds: defaultdict = field(default_factory=lambda: defaultdict(float))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"{k}_calls": v for k, v in sorted(self.calls.items())}
        out.update({f"{k}_seconds": round(v, 4) for k, v in sorted(self.seconds.items())})
        return out


def plan_record(specs: list[RunSpec], dataset: Dataset, opts: SweepOptions) -> dict[str, Any]:
    ids = [s.config_id for s in specs]
    body: dict[str, Any] = dict(
        config_ids=ids,
        dataset=dataset.name,
        dataset_hash=dataset.content_hash,
        n_samples=len(dataset),
        chunk_size=opts.chunk_size,
    )
    # sweep_hash names the sweep whatever the sharding; plan_hash names this shard of it.
    body["sweep_hash"] = stable_hash(body)
    body.update(shard_index=opts.shard_index, shard_count=opts.shard_count)
    body["plan_hash"] = stable_hash(body)
    return body


def input_probe(variant: ModelVariant, session: Session) -> np.ndarray:
    """A one-sample zero input of the shape the session takes (64 px where it is free)."""
    hw = variant.model.input_hw or (64, 64)
    batch = session.input.fixed_batch or 1
    if variant.placement == "ov_ppp":
        return np.zeros((batch, *hw, 3), np.uint8)
    return np.zeros((batch, 3, *hw), np.float32)


def load_sessions(
    specs: list[RunSpec], task: Task, dataset: Dataset, cache_dir: str
) -> dict[ModelVariant, Session]:
    """Build every variant once; a wrong output fails here, before any sample is read."""
    sessions: dict[ModelVariant, Session] = {}
    for spec in specs:
        v = spec.variant
        if v in sessions:
            continue
        session = BACKENDS.get(v.backend)().load(v, cache_dir)
        task.check_outputs(session.infer(input_probe(v, session)), v.model, dataset)
        sessions[v] = session
    return sessions


def infer_batched(session: Session, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """Run x through the session in batches; a model with a fixed batch gets exactly that
    many at a time (the last batch padded with copies, their outputs dropped)."""
    fixed = session.input.fixed_batch
    step = fixed or batch_size
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for b in range(0, len(x), step):
        xb = x[b : b + step]
        n = len(xb)
        if fixed and n < fixed:
            xb = np.concatenate([xb, np.repeat(xb[-1:], fixed - n, axis=0)])
        for name, arr in session.infer(xb).items():
            parts[name].append(arr[:n])
    return {k: np.concatenate(v) for k, v in parts.items()}


class StageProgress:
    """The progress bar's postfix: the chunk, the stage running now and the config it serves."""

    def __init__(self, bar: tqdm) -> None:
        self.bar, self.chunk, self.config = bar, 0, ""

    def __call__(self, stage: str) -> None:
        self.bar.set_postfix_str(f"chunk {self.chunk} {stage} | {self.config}", refresh=False)


class ChunkEvaluator:
    """Evaluates every config on one chunk of samples, each unique stage prefix once."""

    def __init__(
        self,
        samples: list[Sample],
        task: Task,
        counters: Counters,
        batch_size: int,
        on_stage: Callable[[str], None] = lambda stage: None,
    ) -> None:
        self.samples = samples
        self.task = task
        self.counters = counters
        self.batch_size = batch_size
        self.on_stage = on_stage  # told which stage runs now (the progress bar shows it)
        self.memo: dict[tuple[Stage, ...], list[Any]] = {}
        self.prefix_seconds: dict[tuple[Stage, ...], float] = {}

    def outputs(self, prefix: tuple[Stage, ...]) -> list[Any]:
        if prefix in self.memo:
            return self.memo[prefix]
        if len(prefix) == 1:
            parent: list[Any] = [
                Failure(s.problem_stage, s.problem) if s.problem else s.path for s in self.samples
            ]
        else:
            parent = self.outputs(prefix[:-1])
        stage = prefix[-1]
        self.on_stage(stage.kind)
        t0 = time.perf_counter()
        out = [x if isinstance(x, Failure) else self._run(stage, x) for x in parent]
        dt = time.perf_counter() - t0
        self.counters.calls[stage.kind] += sum(not isinstance(x, Failure) for x in parent)
        self.counters.seconds[stage.kind] += dt
        self.prefix_seconds[prefix] = dt
        self.memo[prefix] = out
        return out

    @staticmethod
    def _run(stage: Stage, x: Any) -> Any:
        try:
            return stage(x)
        except StageError as e:
            return Failure(e.stage, e.reason)
        except Exception as e:  # a library bug on one odd file must not end the sweep
            return Failure(stage.kind, f"{type(e).__name__}: {e}")

    def shape_groups(self, stages: tuple[Stage, ...]) -> list[list[int]]:
        """Indices of the samples that reached the end, grouped by host tensor shape (a
        policy such as limit_min gives every image its own size), in sample order."""
        groups: dict[tuple, list[int]] = {}
        for i, x in enumerate(self.outputs(stages)):
            if not isinstance(x, Failure):
                groups.setdefault((x.pixels.shape, x.pixels.dtype.str), []).append(i)
        return list(groups.values())

    def evaluate(self, spec: RunSpec, session: Session) -> tuple[pd.DataFrame, float]:
        """Rows for one config on this chunk, and the seconds its pipeline took standalone."""
        final = self.outputs(spec.stages)
        records: list[dict[str, Any] | None] = [None] * len(self.samples)
        self.on_stage(f"infer {spec.variant.backend}")
        infer_s = post_s = 0.0
        for group in self.shape_groups(spec.stages):
            frames: list[Frame] = [final[i] for i in group]
            t0 = time.perf_counter()
            raw = infer_batched(session, np.stack([f.pixels for f in frames]), self.batch_size)
            t1 = time.perf_counter()
            self.counters.calls["infer_sample"] += len(group)
            outputs = self.task.read_outputs(raw, spec.variant.model)
            preds = self.task.predict(outputs, frames, [self.samples[i] for i in group])
            post_s += time.perf_counter() - t1
            infer_s += t1 - t0
            for i, rec in zip(group, preds, strict=True):
                records[i] = rec
        self.counters.seconds["infer"] += infer_s
        self.counters.seconds["postprocess"] += post_s
        standalone = (
            infer_s
            + post_s
            + sum(
                self.prefix_seconds.get(spec.stages[: k + 1], 0.0) for k in range(len(spec.stages))
            )
        )
        return self._rows(spec, final, records), standalone

    def _rows(self, spec: RunSpec, final: list[Any], records: list) -> pd.DataFrame:
        rows = []
        for s, x, rec in zip(self.samples, final, records, strict=True):
            if isinstance(x, Failure):
                rec = dict(self.task.failed(s), error_stage=x.stage, error=x.reason)
            elif "error_stage" in rec:  # the task refused the output (non-finite, ...)
                self.counters.calls["nonfinite_output"] += 1
            row = dict(sample_index=s.index, sample_id=s.sample_id, config_id=spec.config_id)
            row.update(error_stage=None, error=None)
            row.update(rec)
            rows.append(row)
        return pd.DataFrame(rows)


def run_sweep(
    specs: list[RunSpec], dataset: Dataset, run_dir: Path, opts: SweepOptions, task: Task
) -> dict[str, Any]:
    """Evaluate every config on every sample of this shard; returns the stats written.

    The caller has checked (and written) the run dir's plan: see engine/rundir_lock.py.
    """
    run_dir = Path(run_dir)
    plan = plan_record(specs, dataset, opts)
    chunks = shard_chunks(len(dataset), opts)
    done = store.done_chunks(run_dir)
    todo = [c for c in chunks if c not in done]
    counters = Counters()
    t_start = time.perf_counter()
    if todo:
        t0 = time.perf_counter()
        sessions = load_sessions(specs, task, dataset, opts.cache_dir)
        counters.seconds["load"] += time.perf_counter() - t0
        counters.calls["variant_load"] = len(sessions)
        ran = {
            s.config_id: dict(
                precision_ran=sessions[s.variant].precision_ran,
                notes=list(sessions[s.variant].notes),
            )
            for s in specs
        }
        store.write_atomic_text(run_dir / "variants.json", json.dumps(ran, indent=1))
        n_todo = sum(len(_chunk(dataset, c, opts)) for c in todo)
        bar = tqdm(
            total=n_todo * len(specs),
            unit="eval",
            disable=not opts.progress,
            desc="sweep",
            dynamic_ncols=True,
        )
        progress = StageProgress(bar)
        for c in todo:
            samples = _chunk(dataset, c, opts)
            progress.chunk = c
            ev = ChunkEvaluator(samples, task, counters, opts.batch_size, progress)
            frames, timing = [], {}
            for spec in specs:
                progress.config = f"{spec.variant.backend} {_label(spec)}"
                rows, seconds = ev.evaluate(spec, sessions[spec.variant])
                frames.append(rows)
                timing[spec.config_id] = seconds
                bar.update(len(samples))
            store.write_part(run_dir, c, pd.concat(frames, ignore_index=True), timing, task)
        bar.close()
    stats = dict(
        plan_hash=plan["plan_hash"],
        n_samples=len(dataset),
        n_configs=len(specs),
        chunks_total=len(chunks),
        chunks_computed=len(todo),
        chunks_resumed=len(chunks) - len(todo),
        wall_seconds=round(time.perf_counter() - t_start, 3),
        **counters.as_dict(),
    )
    store.write_atomic_text(run_dir / "stats.json", json.dumps(stats, indent=1))
    return stats


def _chunk(dataset: Dataset, c: int, opts: SweepOptions) -> list[Sample]:
    return dataset.samples[c * opts.chunk_size : (c + 1) * opts.chunk_size]


def _label(spec: RunSpec) -> str:
    return "/".join(v for k, v in spec.factors if k != "backend")
