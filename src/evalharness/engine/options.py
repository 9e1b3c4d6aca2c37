"""How a sweep is cut: chunk and batch sizes, the shard this process runs, and the hash
that names a plan. Light on purpose: `merge` uses it without loading any backend."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class SweepOptions:
    chunk_size: int = 64
    batch_size: int = 64
    cache_dir: str = "~/.cache/evalharness"
    progress: bool = True
    shard_index: int = 0
    shard_count: int = 1


def stable_hash(obj: Any) -> str:
    """Short content hash of a JSON-able value (key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def shard_chunks(n_samples: int, opts: SweepOptions) -> list[int]:
    n_chunks = (n_samples + opts.chunk_size - 1) // opts.chunk_size
    return [c for c in range(n_chunks) if c % opts.shard_count == opts.shard_index]
