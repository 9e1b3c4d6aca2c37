"""How a sweep is cut: chunk and batch sizes, the shard this process runs, and the hash
that names a plan. Light on purpose: `merge` uses it without loading any backend.

Every numeric setting is checked here, when the config is composed: a wrong value is one
line naming the setting, never a silent empty run or a traceback later.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any


@dataclass
class SweepOptions:
    chunk_size: int = 64
    batch_size: int = 64  # on CPU devices (a model card may lower it: cache-bound CPUs)
    gpu_batch_size: int = 64  # on GPU devices: the config's batch_size, never the card's
    cache_dir: str = "~/.cache/evalharness"
    progress: bool = True
    shard_index: int = 0
    shard_count: int = 1
    workers: int = 1  # threads that walk samples and run inference batches in parallel
    dedup: bool = True  # infer each unique host tensor once per model variant
    memory_budget: int = 1_500_000_000  # bytes of host tensors a chunk may hold at once

    def __post_init__(self) -> None:
        for name in (
            "chunk_size",
            "batch_size",
            "gpu_batch_size",
            "shard_count",
            "workers",
            "memory_budget",
        ):
            positive_int(name.replace("shard_", "shard."), getattr(self, name))
        if isinstance(self.shard_index, bool) or not isinstance(self.shard_index, int):
            raise ValueError(f"shard.index must be a whole number, got {self.shard_index!r}")
        if not 0 <= self.shard_index < self.shard_count:
            raise ValueError(
                f"shard.index must be in 0..{self.shard_count - 1} for shard.count="
                f"{self.shard_count}, got {self.shard_index}"
            )


def positive_int(name: str, value: Any) -> int:
    """A setting that must be a whole number >= 1; one clear line otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def stable_hash(obj: Any) -> str:
    """Short content hash of a JSON-able value (key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def shard_chunks(n_samples: int, opts: SweepOptions) -> list[int]:
    n_chunks = (n_samples + opts.chunk_size - 1) // opts.chunk_size
    return [c for c in range(n_chunks) if c % opts.shard_count == opts.shard_index]


def resolve_workers(value: Any) -> int:
    """`workers: auto` is every core this process may use; else a whole number >= 1."""
    if value in (None, "auto"):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return positive_int("workers", value)
