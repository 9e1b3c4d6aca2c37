"""The one evaluation loop: stream chunks of samples through every config, sharing prefixes.

For each chunk, a config's host pipeline is a tuple of stages; the memo maps a stage
*prefix* to that prefix's outputs for the chunk, so a decode shared by 24 configs runs once
and a host tensor shared by three backends is stacked once. The memo lives for one chunk
only: memory stays bounded whatever the dataset size. Each finished chunk is written as its
own part file before the next starts, so an interruption loses at most one chunk.
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

from evalharness.backends.base import BACKENDS, ModelVariant, Session
from evalharness.data.dataset import Dataset, Sample
from evalharness.preprocess.errors import StageError
from evalharness.preprocess.pipeline import Stage
from evalharness.engine import store
from evalharness.engine.options import SweepOptions, shard_chunks, stable_hash
from evalharness.engine.plan import RunSpec

TOPK = 5


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


class PlanMismatchError(RuntimeError):
    """The run dir holds parts of a different sweep; resuming would mix results."""


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


def check_or_write_plan(run_dir: Path, plan: dict[str, Any]) -> None:
    path = run_dir / "plan.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("plan_hash") != plan["plan_hash"]:
            raise PlanMismatchError(
                f"{run_dir} holds results of a different sweep (plan {old.get('plan_hash')}, "
                f"this one {plan['plan_hash']}); choose another hydra.run.dir"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    store.write_atomic_text(path, json.dumps(plan, indent=1))


def input_probe(variant: ModelVariant) -> np.ndarray:
    s = variant.model.input_size
    if variant.placement == "ov_ppp":
        return np.zeros((1, s, s, 3), np.uint8)
    return np.zeros((1, 3, s, s), np.float32)


def load_sessions(
    specs: list[RunSpec], n_classes: int, cache_dir: str
) -> dict[ModelVariant, Session]:
    """Build every variant once; a wrong output width fails here, before any sample is read."""
    sessions: dict[ModelVariant, Session] = {}
    for spec in specs:
        v = spec.variant
        if v in sessions:
            continue
        session = BACKENDS.get(v.backend)().load(v, cache_dir)
        out = session.infer(input_probe(v))
        if out.ndim != 2 or out.shape[1] != n_classes:
            raise ValueError(
                f"model '{v.model.name}' on {v.backend} outputs shape {tuple(out.shape)}, "
                f"but dataset has {n_classes} classes"
            )
        sessions[v] = session
    return sessions


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
        counters: Counters,
        batch_size: int,
        on_stage: Callable[[str], None] = lambda stage: None,
    ) -> None:
        self.samples = samples
        self.counters = counters
        self.batch_size = batch_size
        self.on_stage = on_stage  # told which stage runs now (the progress bar shows it)
        self.memo: dict[tuple[Stage, ...], list[Any]] = {}
        self.prefix_seconds: dict[tuple[Stage, ...], float] = {}
        self.batches: dict[tuple[Stage, ...], tuple[np.ndarray | None, list[int]]] = {}

    def outputs(self, prefix: tuple[Stage, ...]) -> list[Any]:
        if prefix in self.memo:
            return self.memo[prefix]
        if len(prefix) == 1:
            parent: list[Any] = [
                Failure("label", s.problem) if s.problem else s.path for s in self.samples
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

    def host_batch(self, stages: tuple[Stage, ...]) -> tuple[np.ndarray | None, list[int]]:
        if stages not in self.batches:
            outs = self.outputs(stages)
            ok = [i for i, x in enumerate(outs) if not isinstance(x, Failure)]
            batch = np.stack([outs[i] for i in ok]) if ok else None
            self.batches[stages] = (batch, ok)
        return self.batches[stages]

    def evaluate(self, spec: RunSpec, session: Session) -> tuple[pd.DataFrame, float]:
        """Rows for one config on this chunk, and the seconds its pipeline took standalone."""
        batch, ok = self.host_batch(spec.stages)
        self.on_stage(f"infer {spec.variant.backend}")
        t0 = time.perf_counter()
        logits = None
        if batch is not None:
            parts = []
            for b in range(0, len(batch), self.batch_size):
                parts.append(session.infer(batch[b : b + self.batch_size]))
                self.counters.calls["infer_batch"] += 1
            logits = np.concatenate(parts)
            self.counters.calls["infer_sample"] += len(batch)
        infer_s = time.perf_counter() - t0
        self.counters.seconds["infer"] += infer_s
        standalone = infer_s + sum(
            self.prefix_seconds.get(spec.stages[: k + 1], 0.0) for k in range(len(spec.stages))
        )
        return self._rows(spec, logits, ok), standalone

    def _rows(self, spec: RunSpec, logits: np.ndarray | None, ok: list[int]) -> pd.DataFrame:
        n = len(self.samples)
        labels = np.array([s.label for s in self.samples], dtype=np.int64)
        top = np.full((n, TOPK), -1, dtype=np.int64)
        label_logit = np.full(n, np.nan, dtype=np.float32)
        top1_prob = np.full(n, np.nan, dtype=np.float32)
        err_stage: list[str | None] = [None] * n
        err: list[str | None] = [None] * n
        final = self.memo[spec.stages]
        for i, x in enumerate(final):
            if isinstance(x, Failure):
                err_stage[i], err[i] = x.stage, x.reason
        if logits is not None:
            finite = np.isfinite(logits).all(axis=1)
            # Stable sort on -logits: ties go to the lower class index, on every backend.
            order = np.argsort(-logits, axis=1, kind="stable")[:, :TOPK]
            z = logits - logits.max(axis=1, keepdims=True)
            probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            for j, i in enumerate(ok):
                if not finite[j]:
                    err_stage[i], err[i] = "infer", "non-finite model output"
                    self.counters.calls["nonfinite_output"] += 1
                    continue
                top[i] = order[j]
                top1_prob[i] = probs[j, order[j, 0]]
                if labels[i] >= 0:
                    label_logit[i] = logits[j, labels[i]]
        correct1 = (top[:, 0] == labels) & (labels >= 0)
        correct5 = (top == labels[:, None]).any(axis=1) & (labels >= 0)
        return pd.DataFrame(
            dict(
                sample_index=np.array([s.index for s in self.samples], dtype=np.int64),
                sample_id=[s.sample_id for s in self.samples],
                config_id=spec.config_id,
                label=labels,
                pred=top[:, 0],
                correct1=correct1,
                correct5=correct5,
                top5=[list(map(int, r)) for r in top],
                label_logit=label_logit,
                top1_prob=top1_prob,
                error_stage=err_stage,
                error=err,
            )
        )


def run_sweep(
    specs: list[RunSpec], dataset: Dataset, run_dir: Path, opts: SweepOptions
) -> dict[str, Any]:
    """Evaluate every config on every sample of this shard; returns the stats written."""
    run_dir = Path(run_dir)
    plan = plan_record(specs, dataset, opts)
    check_or_write_plan(run_dir, plan)
    chunks = shard_chunks(len(dataset), opts)
    done = store.done_chunks(run_dir)
    todo = [c for c in chunks if c not in done]
    counters = Counters()
    t_start = time.perf_counter()
    if todo:
        t0 = time.perf_counter()
        sessions = load_sessions(specs, len(dataset.classes), opts.cache_dir)
        counters.seconds["load"] += time.perf_counter() - t0
        counters.calls["variant_load"] = len(sessions)
        ran = {
            s.config_id: getattr(sessions[s.variant], "effective_precision", s.variant.precision)
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
            ev = ChunkEvaluator(samples, counters, opts.batch_size, progress)
            frames, timing = [], {}
            for spec in specs:
                progress.config = f"{spec.variant.backend} {_label(spec)}"
                rows, seconds = ev.evaluate(spec, sessions[spec.variant])
                frames.append(rows)
                timing[spec.config_id] = seconds
                bar.update(len(samples))
            store.write_part(run_dir, c, pd.concat(frames, ignore_index=True), timing)
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
