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

# One fixed schema for every part, so parts concatenate (a part without errors would
# otherwise type its error columns as null) and compaction can stream them.
PRED_SCHEMA = pa.schema(
    [
        ("sample_index", pa.int64()),
        ("sample_id", pa.string()),
        ("config_id", pa.string()),
        ("label", pa.int64()),
        ("pred", pa.int64()),
        ("correct1", pa.bool_()),
        ("correct5", pa.bool_()),
        ("top5", pa.list_(pa.int64())),
        ("label_logit", pa.float32()),
        ("top1_prob", pa.float32()),
        ("error_stage", pa.string()),
        ("error", pa.string()),
    ]
)


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
    table = pa.Table.from_pandas(rows, schema=PRED_SCHEMA, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[TIMING_KEY] = json.dumps(timing).encode()
    table = table.replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(table, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def compact_parts(run_dir: Path, chunks: list[int], out: Path):
    """Stream the parts, in chunk order, into one Parquet file; one part in memory at a time.

    Returns per-config counts (n, n_errors, n_correct, n_correct5), per-config seconds and
    the error rows: everything summary.csv and errors.csv need, without re-reading.
    """
    counts: pd.DataFrame | None = None
    timing: dict[str, float] = {}
    errors = []
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    with pq.ParquetWriter(tmp, PRED_SCHEMA) as writer:
        for c in chunks:
            table = pq.read_table(part_path(run_dir, c))
            for cid, sec in json.loads(table.schema.metadata[TIMING_KEY]).items():
                timing[cid] = timing.get(cid, 0.0) + sec
            writer.write_table(table.replace_schema_metadata(None).cast(PRED_SCHEMA))
            small = table.select(
                ["config_id", "correct1", "correct5", "error_stage", "sample_id", "error"]
            ).to_pandas()
            small["n"] = 1
            small["n_errors"] = small.error_stage.notna()
            part = small.groupby("config_id", sort=False)[
                ["n", "n_errors", "correct1", "correct5"]
            ].sum()
            counts = part if counts is None else counts.add(part, fill_value=0)
            errors.append(
                small[small.error_stage.notna()][["sample_id", "config_id", "error_stage", "error"]]
            )
    os.replace(tmp, out)
    if counts is None:  # a shard that got no chunk (more shards than chunks)
        empty = pd.DataFrame(columns=["sample_id", "config_id", "error_stage", "error"])
        return pd.DataFrame(columns=["n", "n_errors", "n_correct", "n_correct5"]), timing, empty
    counts = counts.rename(columns={"correct1": "n_correct", "correct5": "n_correct5"}).astype(int)
    return counts, timing, pd.concat(errors, ignore_index=True)


def write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_atomic_csv(path: Path, df: pd.DataFrame) -> None:
    write_atomic_text(path, df.to_csv(index=False))
