"""How a sweep is cut: chunk and batch sizes, the shard this process runs, and the hash
that names a plan. Light on purpose: `merge` uses it without loading any backend.

Every numeric setting is checked here, when the config is composed: a wrong value is one
line naming the setting, never a silent empty run or a traceback later.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
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


def memory_bytes(value: Any) -> int:
    """memory_budget: bytes as a number (1.5e9) or with a unit ("1.5GB", "800MB")."""
    text = str(value).strip().upper()
    units = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    for unit, scale in units.items():
        if text.endswith(unit):
            try:
                return int(float(text[: -len(unit)]) * scale)
            except ValueError:
                break
    try:
        return int(float(text))
    except ValueError:
        raise ValueError(
            f"memory_budget must be bytes (1.5e9) or like 1.5GB, got {value!r}"
        ) from None


def sweep_options(config: Mapping[str, Any]) -> SweepOptions:
    """How the sweep is cut and run, from the resolved config (plain data)."""
    shard = config.get("shard") or {}
    # A model may ask for its own batch: large activations at batch 64 fall out of cache
    # (EfficientNet-Lite0 on torch: 38 ms/image at batch 1, 100 ms at batch 64).
    batch = (config.get("model") or {}).get("batch_size") or config["batch_size"]
    return SweepOptions(
        chunk_size=config["chunk_size"],
        batch_size=batch,
        gpu_batch_size=config["batch_size"],
        cache_dir=str(config["cache_dir"]),
        progress=bool(config["progress"]),
        shard_index=shard.get("index", 0),
        shard_count=shard.get("count", 1),
        workers=resolve_workers(config.get("workers", "auto")),
        dedup=bool(config.get("dedup", True)),
        memory_budget=memory_bytes(config.get("memory_budget", 1_500_000_000)),
    )
