"""The one evaluation loop: stream chunks of samples through every config, each unique piece
of work once, on every core, in bounded memory.

For each chunk of samples:
1. Preprocess (engine/walk.py): the configs' host pipelines form a trie of stage prefixes;
   each sample walks it depth first, so a decode shared by 24 configs runs once per sample
   and an intermediate image lives only while the walk is below it (a huge decoded image is
   never held chunk_size times). Samples are walked in parallel on `workers` threads.
2. Infer (engine/infer.py): per model variant, a sample's host tensor is inferred once
   however many configs produce the same bytes (xxh3-128 of the bytes plus shape and dtype,
   confirmed by a byte comparison); batches run in parallel across variants.
3. Post-process: the task turns each config's outputs, with the Geometry of each sample's
   pixels, into prediction rows; the chunk is written as one part file. A task that
   compares outputs with the reference config's (`Task.needs_reference_output`) gets the
   reference's raw outputs of the same samples: the reference is scored first and its
   outputs are kept until the chunk is written.
The next chunk's preprocessing runs while the current chunk infers. Results do not depend
on the number of workers: every batch is formed the same way and computed by one session
with the backend's fixed thread count.

Memory: the host tensors a chunk holds at once are bounded by `memory_budget`: pipelines are
processed in groups whose tensors fit; a plan whose smallest group cannot fit is refused
before any work, with the figure it would need.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from evalharness.backends.base import BACKENDS, ModelVariant, Session
from evalharness.config.memory import tensor_bytes
from evalharness.config.options import SweepOptions, shard_chunks, stable_hash
from evalharness.config.plan import RunSpec
from evalharness.config.runplan import RunPlan
from evalharness.data.dataset import Dataset, Sample
from evalharness.engine.calibration import tensors as calibration_tensors
from evalharness.engine.gpu_monitor import GpuMonitor, wants_gpu_monitor
from evalharness.engine.infer import VariantInference, infer_batched
from evalharness.engine.pool import PriorityPool
from evalharness.engine.walk import ByteBudget, Failure, Pipeline, Walker, pipelines_of
from evalharness.preprocess.colour import host_tensor
from evalharness.rundir import store
from evalharness.tasks.base import Task

log = logging.getLogger("evalharness")
WARN_CONFIGS = 1000  # a plan this large gets a one-line warning with a time estimate
# One decode budget per memory budget, shared by the chunks walked at the same time.
DECODE_BUDGETS: dict[int, ByteBudget] = {}

__all__ = ["Failure", "infer_batched", "load_sessions", "run_sweep", "plan_record"]


@dataclass
class Counters:
    """Work actually done: the proof that shared work was done once."""

    calls: Counter = field(default_factory=Counter)
    seconds: defaultdict = field(default_factory=lambda: defaultdict(float))

    def add(self, other: Counters) -> None:
        self.calls.update(other.calls)
        for k, v in other.seconds.items():
            self.seconds[k] += v

    def as_dict(self) -> dict[str, Any]:
        skip = {"infer_requested", "infer_unique"}  # reported on their own
        out: dict[str, Any] = {
            f"{k}_calls": v for k, v in sorted(self.calls.items()) if k not in skip
        }
        out.update({f"{k}_seconds": round(v, 4) for k, v in sorted(self.seconds.items())})
        return out


def plan_record(plan: RunPlan) -> dict[str, Any]:
    """plan.json: what this run computes (config ids, dataset hash, chunking, its shard)."""
    specs, dataset, opts = plan.specs, plan.dataset, plan.options
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
    dtype, layout = host_tensor(variant.placement)
    return np.zeros((batch, *hw, 3) if layout == "NHWC" else (batch, 3, *hw), dtype)


def load_sessions(
    specs, task: Task, dataset: Dataset, cache_dir: str, calibration=None
) -> dict[ModelVariant, Session]:
    """Build every variant once; a wrong output fails here, before any sample is read.

    `calibration` (the plan's calibration samples) gives a quantizing variant its host
    tensors: the config's own preprocessing of the calibration images."""
    sessions: dict[ModelVariant, Session] = {}
    for spec in specs:
        v = spec.variant
        if v in sessions:
            continue
        backend = BACKENDS.get(v.backend)()
        tensors = None
        if v.option("calibrate") and calibration is not None:
            tensors = calibration_tensors(spec, list(calibration))
        session = task.wrap_session(backend.load(v, cache_dir, calibration=tensors), v)
        task.check_outputs(session.infer(input_probe(v, session)), v.model, dataset)
        sessions[v] = session
    return sessions


def quantize_seconds(sessions: dict) -> float:
    """Seconds spent quantizing this run (0 when every quantized model came from the cache)."""
    return sum(s.build_seconds for s in sessions.values())


class StageProgress:
    """The progress bar's postfix: the chunk and the stage running now."""

    def __init__(self, bar: tqdm) -> None:
        self.bar, self.chunk = bar, 0

    def __call__(self, stage: str) -> None:
        self.bar.set_postfix_str(f"chunk {self.chunk} {stage}", refresh=False)


def pipeline_groups(pipes: list[Pipeline], n_samples: int, budget: int) -> list[list[Pipeline]]:
    """Consecutive (trie-ordered) pipelines whose host tensors for a chunk fit the budget;
    the group that holds the reference config first (a task that compares outputs with
    the reference's needs them before any other config is scored)."""
    groups: list[list[Pipeline]] = [[]]
    used = 0
    for p in pipes:
        need = tensor_bytes(p.specs[0]) * n_samples
        if groups[-1] and used + need > budget:
            groups.append([])
            used = 0
        groups[-1].append(p)
        used += need
    has_ref = [any(s.is_reference for p in g for s in p.specs) for g in groups]
    return [g for g, r in zip(groups, has_ref, strict=True) if r] + [
        g for g, r in zip(groups, has_ref, strict=True) if not r
    ]


class ChunkEvaluator:
    """Everything for one chunk: walk (preprocess), infer unique tensors, post-process."""

    def __init__(
        self,
        samples: list[Sample],
        task: Task,
        pipes: list[Pipeline],
        sessions: dict[ModelVariant, Session],
        opts: SweepOptions,
        pool: PriorityPool,
        priority: int = 0,
    ) -> None:
        self.samples, self.task, self.pipes = samples, task, pipes
        self.sessions, self.opts, self.pool = sessions, opts, pool
        self.priority = priority  # the chunk number: earlier chunks' work runs first
        # half the budget for host tensors (pipeline groups), half for decoding in flight
        self.decode_budget = DECODE_BUDGETS.setdefault(
            opts.memory_budget, ByteBudget(opts.memory_budget // 2)
        )
        self.counters = Counters()
        self.timing: dict[str, float] = defaultdict(float)
        # the reference config's raw outputs per sample (None: failed), for tasks that
        # compare with them; set when the reference's group is evaluated (it comes first)
        self.reference: list[Any] | None = None

    def preprocess(self, group: list[Pipeline]) -> dict[int, list[Any]]:
        """Host frames (or Failures) per pipeline index of the group, per sample."""
        walker = Walker([p.stages for p in group], self.decode_budget)
        results = self.pool.map(walker.walk, self.samples, priority=self.priority)
        finals: dict[int, list[Any]] = {k: [] for k in range(len(group))}
        for outs, counts in results:
            for k, x in enumerate(outs):
                finals[k].append(x)
            # per-pipeline seconds (shared stages in full): each config's standalone time
            for k, p in enumerate(group):
                secs = counts.seconds.pop(f"prefix:{k}", 0.0)
                for spec in p.specs:
                    self.timing[spec.config_id] += secs
            self.counters.add(counts)
        return finals

    def evaluate_group(self, group: list[Pipeline], finals: dict[int, list[Any]]):
        """Rows of every config whose pipeline is in the group."""
        by_variant: dict[ModelVariant, list[tuple[RunSpec, list[Any]]]] = defaultdict(list)
        for k, p in enumerate(group):
            for spec in p.specs:
                by_variant[spec.variant].append((spec, finals[k]))
        jobs = {
            v: VariantInference(self.sessions[v], v, items, self.opts, self.counters)
            for v, items in by_variant.items()
        }
        # every variant's batches at once: the pool runs them in parallel (on this thread
        # only the waiting happens, so no pool thread ever waits on another)
        prepared = [
            (job, self.pool.submit(job.prepare, priority=self.priority)) for job in jobs.values()
        ]
        futures = [
            self.pool.submit(job.run_batch, batch, priority=self.priority)
            for job, batches in prepared
            for batch in batches.result()
        ]
        for fut in futures:
            fut.result()
        columns = {}
        results = {v: job.results() for v, job in jobs.items()}  # {config_id: outputs}
        if self.task.needs_reference_output:
            for v, outputs_of in results.items():
                ref = next((s for s, _ in by_variant[v] if s.is_reference), None)
                if ref is not None:
                    self.reference = outputs_of[ref.config_id]
        for v, job in jobs.items():
            outputs_of = results[v]
            for spec, final in by_variant[v]:
                t0 = time.perf_counter()
                columns[spec.config_id] = self._rows(spec, final, outputs_of[spec.config_id])
                post = time.perf_counter() - t0
                self.counters.seconds["postprocess"] += post
                self.timing[spec.config_id] += post + job.seconds_per_sample * len(final)
        return columns

    def _rows(self, spec: RunSpec, final: list[Any], outputs: list[Any]) -> dict[str, list]:
        """The config's prediction rows on this chunk, as columns (one list per column)."""
        records: list[dict[str, Any] | None] = [None] * len(self.samples)
        groups: dict[tuple, list[int]] = {}
        for i, x in enumerate(final):
            if not isinstance(x, Failure):
                groups.setdefault((x.pixels.shape, x.pixels.dtype.str), []).append(i)
        model = spec.variant.model
        for idx in groups.values():
            raw = {n: np.stack([outputs[i][n] for i in idx]) for n in outputs[idx[0]]}
            extra = {}
            if self.task.needs_reference_output:
                ref = self.reference or [None] * len(self.samples)
                extra["reference"] = [ref[i] for i in idx]
            preds = self.task.predict(
                self.task.read_outputs(raw, model),
                [final[i] for i in idx],
                [self.samples[i] for i in idx],
                **extra,
            )
            for i, rec in zip(idx, preds, strict=True):
                records[i] = rec
        errors: list[tuple[str | None, str | None]] = []
        for i, (s, x) in enumerate(zip(self.samples, final, strict=True)):
            if isinstance(x, Failure):
                records[i] = self.task.failed(s)
                errors.append((x.stage, x.reason))
            elif "error_stage" in records[i]:  # the task refused the output (non-finite)
                self.counters.calls["nonfinite_output"] += 1
                rec = dict(records[i])
                errors.append((rec.pop("error_stage"), rec.pop("error")))
                records[i] = rec
            else:
                errors.append((None, None))
        # columns, not row dicts: a chunk of a big plan is hundreds of thousands of rows
        cols: dict[str, list] = {
            "sample_index": [s.index for s in self.samples],
            "sample_id": [s.sample_id for s in self.samples],
            "config_id": [spec.config_id] * len(self.samples),
        }
        for key in records[0]:
            cols[key] = [r[key] for r in records]
        cols["error_stage"] = [e[0] for e in errors]
        cols["error"] = [e[1] for e in errors]
        return cols


def _chunk(dataset: Dataset, c: int, opts: SweepOptions) -> list[Sample]:
    return dataset.samples[c * opts.chunk_size : (c + 1) * opts.chunk_size]


def probe_seconds(samples, task, pipes, sessions, opts, pool) -> float:
    """Seconds per sample of the whole plan, from a short probe: two samples through every
    pipeline and every variant (nothing is written)."""
    ev = ChunkEvaluator(samples[:2], task, pipes, sessions, opts, pool)
    t0 = time.perf_counter()
    for group in pipeline_groups(pipes, len(ev.samples), opts.memory_budget // 2):
        ev.evaluate_group(group, ev.preprocess(group))
    return (time.perf_counter() - t0) / max(1, len(ev.samples))


def warn_if_large(specs: list[RunSpec], n_samples: int, seconds_per_sample: float) -> None:
    secs = seconds_per_sample * n_samples
    when = f"{secs / 3600:.1f} h" if secs >= 3600 else f"{secs / 60:.1f} min"
    log.warning(
        "%d configs x %d samples = %d evaluations; about %s expected from a 2-sample probe",
        len(specs), n_samples, len(specs) * n_samples, when,
    )  # fmt: skip


def run_sweep(plan: RunPlan, run_dir: Path) -> dict[str, Any]:
    """Evaluate every config on every sample of this shard; returns the stats written.

    The caller has claimed the run dir (rundir/claim.py): locked, checked, plan written.
    """
    run_dir = Path(run_dir)
    specs, dataset, opts, task = list(plan.specs), plan.dataset, plan.options, plan.task
    calibration = plan.calibration.samples if plan.calibration is not None else None
    record = plan_record(plan)
    chunks = shard_chunks(len(dataset), opts)
    done = store.verified_chunks(run_dir)  # an edited part is computed again
    todo = [c for c in chunks if c not in done]
    counters = Counters()
    gpu_stats: dict[str, Any] = {}
    t_start = time.perf_counter()
    cpu_start = os.times()
    pipes = pipelines_of(specs)
    if todo:
        t0 = time.perf_counter()
        sessions = load_sessions(specs, task, dataset, opts.cache_dir, calibration)
        counters.seconds["load"] += time.perf_counter() - t0
        counters.seconds["quantize"] += quantize_seconds(sessions)
        counters.calls["variant_load"] = len(sessions)
        ran = {
            s.config_id: dict(
                precision_ran=sessions[s.variant].precision_ran,
                notes=list(sessions[s.variant].notes),
            )
            for s in specs
        }
        store.write_recorded(run_dir, "variants.json", json.dumps(ran, indent=1))
        n_todo = sum(len(_chunk(dataset, c, opts)) for c in todo)
        bar = tqdm(total=n_todo * len(specs), unit="eval", disable=not opts.progress,
                   desc="sweep", dynamic_ncols=True)  # fmt: skip
        progress = StageProgress(bar)
        on_gpu = wants_gpu_monitor({s.variant.device for s in specs})
        with PriorityPool(opts.workers) as pool, \
                ThreadPoolExecutor(1, thread_name_prefix="eh-prefetch") as ahead, \
                (GpuMonitor() if on_gpu else nullcontext()) as gpu:  # fmt: skip
            run_chunks(todo, dataset, specs, pipes, sessions, task, opts, pool, ahead,
                       counters, progress, run_dir, bar)  # fmt: skip
        bar.close()
        gpu_stats = gpu.stats() if on_gpu else {}
    cpu_end = os.times()
    wall = time.perf_counter() - t_start
    cpu = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)
    requested = counters.calls.get("infer_requested", 0)
    unique = counters.calls.get("infer_unique", 0)
    stats = dict(
        plan_hash=record["plan_hash"],
        n_samples=len(dataset),
        n_configs=len(specs),
        chunks_total=len(chunks),
        chunks_computed=len(todo),
        chunks_resumed=len(chunks) - len(todo),
        wall_seconds=round(wall, 3),
        cpu_seconds=round(cpu, 3),
        cpu_utilisation=round(cpu / wall, 3) if wall > 0 else None,
        workers=opts.workers,
        threads=specs[0].variant.threads if specs else None,
        dedup=opts.dedup,
        infer_requested=requested,
        infer_unique=unique,
        infer_saving=round(1 - unique / requested, 4) if requested else 0.0,
        **counters.as_dict(),
        **gpu_stats,
    )
    store.write_recorded(run_dir, "stats.json", json.dumps(stats, indent=1))
    return stats


def run_chunks(todo, dataset, specs, pipes, sessions, task, opts, pool, ahead, counters,
               progress, run_dir, bar) -> None:  # fmt: skip
    """The chunk loop, with the next chunk's first group preprocessed while this one infers."""
    order = {s.config_id: k for k, s in enumerate(specs)}

    def start(c: int) -> tuple[ChunkEvaluator, list[list[Pipeline]], Future]:
        samples = _chunk(dataset, c, opts)
        ev = ChunkEvaluator(samples, task, pipes, sessions, opts, pool, priority=c)
        groups = pipeline_groups(pipes, len(samples), opts.memory_budget // 2)
        return ev, groups, ahead.submit(ev.preprocess, groups[0])

    if len(specs) > WARN_CONFIGS:
        first_samples = _chunk(dataset, todo[0], opts)
        n_left = sum(len(_chunk(dataset, c, opts)) for c in todo)
        warn_if_large(specs, n_left,
                      probe_seconds(first_samples, task, pipes, sessions, opts, pool))  # fmt: skip
    nxt = start(todo[0])
    for n, c in enumerate(todo):
        ev, groups, first = nxt
        progress.chunk = c
        columns: dict[str, dict[str, list]] = {}
        for g, group in enumerate(groups):
            progress("preprocess")
            finals = first.result() if g == 0 else ev.preprocess(group)
            if g == 0 and n + 1 < len(todo):
                nxt = start(todo[n + 1])  # overlap: the next chunk walks while this one infers
            progress("infer")
            columns.update(ev.evaluate_group(group, finals))
            del finals
        # one Arrow table per chunk, configs in plan order, samples in order within each
        ordered = [columns[cid] for cid in sorted(columns, key=order.__getitem__)]
        table = pa.Table.from_pydict(
            {k: [v for cols in ordered for v in cols[k]] for k in task.schema.names},
            schema=task.schema,
        )
        store.write_part(run_dir, c, table, dict(ev.timing), task)
        counters.add(ev.counters)
        bar.update(len(ev.samples) * len(specs))
