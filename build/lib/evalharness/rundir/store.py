"""On-disk layout of a run dir, and the writes that make a kill at any instant harmless.

run_dir/
  .lock                exclusive lock of the process writing here (engine/claim.py)
  plan.json            what this run computes (config ids, dataset hash, chunking)
  configs.csv          config_id + factor columns + resolved settings
  parts/chunk-NNNNN.parquet   predictions of one chunk for every config (atomic rename)
  parts/manifest.jsonl one line per finished part: chunk, rows, sha256 (after the rename)
  predictions.parquet  all parts, compacted, one row per (sample, config)
  summary.csv          one row per config
  errors.csv           one row per (sample, stage, reason)
  stats.json           work actually done by the last invocation

A part is written to a temp name, fsynced and renamed: a part either exists complete or
not at all. It counts as done only once its manifest line (row count and SHA-256 of the
file) is written after the rename; a part without one (a kill between the two) is computed
again, and merge re-hashes every part against its line, so an edited or truncated part is
refused rather than merged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evalharness.hashing import sha256_file

TIMING_KEY = b"evalharness.timing"
MANIFEST = "manifest.jsonl"


def part_path(run_dir: Path, chunk: int) -> Path:
    return run_dir / "parts" / f"chunk-{chunk:05d}.parquet"


def part_records(run_dir: Path) -> dict[int, dict]:
    """The manifest: chunk -> {rows, sha256}; a torn last line (a kill mid-append) is skipped."""
    path = run_dir / "parts" / MANIFEST
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
            out[int(rec["chunk"])] = rec
        except (ValueError, KeyError, TypeError):
            continue
    return out


def done_chunks(run_dir: Path) -> set[int]:
    """Chunks whose part file exists and whose manifest line was written after it."""
    records = part_records(run_dir)
    return {c for c in records if part_path(run_dir, c).exists()}


def write_part(
    run_dir: Path, chunk: int, rows: pa.Table | pd.DataFrame, timing: dict[str, float], task
) -> None:
    """Atomically write one chunk's predictions; per-config seconds ride in the metadata."""
    path = part_path(run_dir, chunk)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(rows, pa.Table):
        table = rows.cast(task.schema)
    else:
        table = pa.Table.from_pandas(rows, schema=task.schema, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[TIMING_KEY] = json.dumps(timing).encode()
    table = table.replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    record = dict(chunk=chunk, rows=table.num_rows, sha256=sha256_file(path))
    append_line(run_dir / "parts" / MANIFEST, json.dumps(record))


def append_line(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def compact_parts(run_dir: Path, chunks: list[int], out: Path, schema: pa.Schema):
    """Stream the parts, in chunk order, into one Parquet file; one part in memory at a time.

    Returns per-config counts (n, n_errors), per-config seconds and the error rows.
    """
    counts: pd.DataFrame | None = None
    timing: dict[str, float] = {}
    errors = []
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for c in chunks:
                table = pq.read_table(part_path(run_dir, c))
                for cid, sec in json.loads(table.schema.metadata[TIMING_KEY]).items():
                    timing[cid] = timing.get(cid, 0.0) + sec
                writer.write_table(table.replace_schema_metadata(None).cast(schema))
                small = table.select(["config_id", "error_stage", "sample_id", "error"]).to_pandas()
                small["n"] = 1
                small["n_errors"] = small.error_stage.notna()
                part = small.groupby("config_id", sort=False)[["n", "n_errors"]].sum()
                counts = part if counts is None else counts.add(part, fill_value=0)
                bad = small[small.error_stage.notna()]
                errors.append(bad[["sample_id", "config_id", "error_stage", "error"]])
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    if counts is None:  # a shard that got no chunk (more shards than chunks)
        empty = pd.DataFrame(columns=["sample_id", "config_id", "error_stage", "error"])
        return pd.DataFrame(columns=["n", "n_errors"]), timing, empty
    return counts.astype(int), timing, pd.concat(errors, ignore_index=True)


def write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic_csv(path: Path, df: pd.DataFrame) -> None:
    write_atomic_text(path, df.to_csv(index=False))


def stale_temp_files(run_dir: Path) -> list[Path]:
    """Temp files a killed process left (`.NAME.tmpPID`): safe to remove under the lock."""
    found = []
    for folder in (run_dir, run_dir / "parts"):
        if folder.is_dir():
            found += [p for p in folder.glob(".*.tmp*") if p.is_file()]
    return found
