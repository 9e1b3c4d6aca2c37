"""On-disk layout of a run dir, and the writes that make a kill at any instant harmless.

run_dir/
  plan.json            what this run computes (config ids, dataset hash, chunking)
  configs.csv          config_id + factor columns + resolved settings
  parts/chunk-NNNNN.parquet   predictions of one chunk for every config (atomic rename)
  predictions.parquet  all parts, compacted, one row per (sample, config)
  summary.csv          one row per config
  errors.csv           one row per (sample, stage, reason)
  stats.json           work actually done by the last invocation

A part is written to a temp name and renamed: the rename is atomic, so a part either exists
complete or not at all, and its existence is the record that the chunk is done.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TIMING_KEY = b"evalharness.timing"


def part_path(run_dir: Path, chunk: int) -> Path:
    return run_dir / "parts" / f"chunk-{chunk:05d}.parquet"


def done_chunks(run_dir: Path) -> set[int]:
    parts = run_dir / "parts"
    if not parts.is_dir():
        return set()
    return {int(p.stem.split("-")[1]) for p in parts.glob("chunk-*.parquet")}


def write_part(run_dir: Path, chunk: int, rows: pd.DataFrame, timing: dict[str, float]) -> None:
    """Atomically write one chunk's predictions; per-config seconds ride in the metadata."""
    path = part_path(run_dir, chunk)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(rows, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[TIMING_KEY] = json.dumps(timing).encode()
    table = table.replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(table, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_parts(run_dir: Path, chunks: list[int]) -> tuple[pd.DataFrame, dict[str, float]]:
    frames, timing = [], {}
    for c in chunks:
        table = pq.read_table(part_path(run_dir, c))
        for cid, sec in json.loads(table.schema.metadata[TIMING_KEY]).items():
            timing[cid] = timing.get(cid, 0.0) + sec
        frames.append(table.to_pandas())
    return pd.concat(frames, ignore_index=True), timing


def write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_atomic_csv(path: Path, df: pd.DataFrame) -> None:
    write_atomic_text(path, df.to_csv(index=False))


def write_atomic_parquet(path: Path, df: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
