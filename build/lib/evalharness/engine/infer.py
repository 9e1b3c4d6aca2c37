"""Inference of one model variant's host tensors, each unique tensor once.

Every config routed to a variant hands it one host tensor per sample; configs whose
pipelines differ but produce the same bytes (Pillow and OpenCV decode most JPEGs
identically) would infer the same input again. Keyed by xxh3-128 of the bytes plus shape
and dtype, and confirmed by a byte comparison with the tensor already kept under that key,
each unique tensor is inferred once and its outputs are handed to every (config, sample)
that produced it. `dedup=false` turns this off (every tensor inferred, as before).

Batches are formed from the unique tensors in a fixed order (first occurrence over the
group's pipelines and samples), so they are the same whatever the number of workers; each
batch runs on one session (a lock serialises sessions that are not thread safe).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import numpy as np
import xxhash

from evalharness.backends.base import ModelVariant, Session
from evalharness.engine.walk import Failure, same_bytes

_LOCKS: dict[int, threading.Lock] = defaultdict(threading.Lock)


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
        for name, arr in _infer(session, xb).items():
            parts[name].append(arr[:n])
    return {k: np.concatenate(v) for k, v in parts.items()}


def _infer(session: Session, x: np.ndarray) -> dict[str, np.ndarray]:
    if session.thread_safe:
        return session.infer(x)
    with _LOCKS[id(session)]:
        return session.infer(x)


class VariantInference:
    """The unique tensors of one variant in one group, their batches, and the outputs."""

    def __init__(self, session: Session, variant: ModelVariant, items, opts, counters) -> None:
        self.session, self.variant, self.items = session, variant, items
        self.opts, self.counters = opts, counters
        self.unique: list[np.ndarray] = []
        self.slots: dict[str, list[int | None]] = {}
        self.outputs: list[dict[str, np.ndarray] | None] = []
        self.seconds = 0.0
        self.batches = 0
        self.requested = 0
        self.collisions = 0
        self._lock = threading.Lock()  # batches of one variant may run on several threads

    def prepare(self) -> list[list[int]]:
        """Dedup the tensors; returns the batches (lists of unique indices) to infer."""
        keys: dict[tuple, int] = {}
        seen: dict[int, tuple[np.ndarray, int]] = {}  # id(tensor) -> (tensor, unique index)
        requested = 0
        for spec, final in self.items:
            slots: list[int | None] = []
            for x in final:
                if isinstance(x, Failure):
                    slots.append(None)
                    continue
                requested += 1
                slots.append(self._slot(x.pixels, keys, seen))
            self.slots[spec.config_id] = slots
        self.requested = requested
        self.outputs = [None] * len(self.unique)
        by_shape: dict[tuple, list[int]] = {}
        for u, t in enumerate(self.unique):
            by_shape.setdefault((t.shape, t.dtype.str), []).append(u)
        # a GPU wants large batches; the model card's batch_size tunes CPU caches only
        on_cpu = self.variant.device == "cpu"
        step = self.session.input.fixed_batch or (
            self.opts.batch_size if on_cpu else self.opts.gpu_batch_size
        )
        return [ids[b : b + step] for ids in by_shape.values() for b in range(0, len(ids), step)]

    def _slot(self, t: np.ndarray, keys: dict[tuple, int], seen: dict) -> int:
        """The unique index of this tensor (prepare runs on a pool thread: no shared state
        is touched here but this job's own)."""
        if not self.opts.dedup:
            self.unique.append(t)
            return len(self.unique) - 1
        # The walk hands the very same array to every config whose stages it shared (or
        # reused on identical input): that object needs no hash and no comparison. `seen`
        # holds the object, so its id cannot be recycled while prepare runs.
        hit = seen.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        u = self._unique_index(t, keys)
        seen[id(t)] = (t, u)
        return u

    def _unique_index(self, t: np.ndarray, keys: dict[tuple, int]) -> int:
        key = (t.shape, t.dtype.str, xxhash.xxh3_128_digest(np.ascontiguousarray(t)))
        u = keys.get(key)
        while u is not None and not same_bytes(self.unique[u], t):
            self.collisions += 1  # never seen; handled anyway
            key = (*key, "again")
            u = keys.get(key)
        if u is None:
            self.unique.append(t)
            u = keys[key] = len(self.unique) - 1
        return u

    def run_batch(self, ids: list[int]) -> None:
        t0 = time.perf_counter()
        out = infer_batched(self.session, np.stack([self.unique[u] for u in ids]), len(ids))
        for j, u in enumerate(ids):
            self.outputs[u] = {name: arr[j] for name, arr in out.items()}
        dt = time.perf_counter() - t0
        with self._lock:
            self.seconds += dt
            self.batches += 1

    @property
    def seconds_per_sample(self) -> float:
        return self.seconds / len(self.outputs) if self.outputs else 0.0

    def results(self) -> dict[str, list[Any]]:
        """Per config, each sample's outputs (a dict by name) or None where it failed."""
        self.unique = []  # the tensors are not needed any more
        self.counters.seconds["infer"] += self.seconds  # on the caller's thread: no races
        self.counters.calls["infer_batch"] += self.batches
        self.counters.calls["infer_requested"] += self.requested
        self.counters.calls["infer_unique"] += len(self.outputs)
        if self.collisions:
            self.counters.calls["infer_hash_collision"] += self.collisions
        return {
            cid: [None if u is None else self.outputs[u] for u in slots]
            for cid, slots in self.slots.items()
        }
