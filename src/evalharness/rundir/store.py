"""On-disk layout of a run dir, and the writes that make a kill at any instant harmless.

run_dir/
  .lock                exclusive lock of the process writing here (rundir/claim.py)
  records.json         sha256 and size of every file below that the run wrote (records.py);
                       its presence (our format) is what makes a dir a run dir
  plan.json            what this run computes (config ids, dataset hash, chunking)
  configs.csv          config_id + factor columns + resolved settings
  parts/chunk-NNNNN.parquet   predictions of one chunk for every config (atomic rename)
  predictions.parquet  all parts, compacted, one row per (sample, config)
  summary.csv          one row per config
  errors.csv           one row per (sample, stage, reason)
  stats.json           work actually done by the last invocation

Every file is written to a fresh temp name (O_EXCL: never through a link someone planted),
fsynced where it matters and renamed over its final name, which replaces a link rather than
following it. A part counts as done only once records.json holds its row count and sha256
(entered after the rename); a part without an entry (a kill between the two) or whose bytes
are not the recorded ones (edited, truncated) is computed again, and compaction and merge
check every part against its entry before reading it.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evalharness.rundir import records
from evalharness.rundir.atomic import temp_beside, write_atomic_bytes

TIMING_KEY = b"evalharness.timing"
PARTS = "parts"
log = logging.getLogger("evalharness")


def part_path(run_dir: Path, chunk: int) -> Path:
    return run_dir / PARTS / f"chunk-{chunk:05d}.parquet"


def part_name(chunk: int) -> str:
    """A part's key in records.json (its path relative to the run dir)."""
    return f"{PARTS}/chunk-{chunk:05d}.parquet"


def part_records(run_dir: Path) -> dict[int, dict]:
    """chunk -> {chunk, rows, sha256, size} for every part records.json holds."""
    out = {}
    for name, entry in records.entries(run_dir).items():
        if name.startswith(f"{PARTS}/") and "chunk" in entry:
            out[int(entry["chunk"])] = entry
    return out


def done_chunks(run_dir: Path) -> set[int]:
    """Chunks whose part exists and was recorded after it was written (not re-hashed)."""
    return {c for c in part_records(run_dir) if records.is_regular(part_path(run_dir, c))}


def verified_chunks(run_dir: Path) -> set[int]:
    """Done chunks whose part still has its recorded bytes. A part that does not (edited,
    truncated, replaced by a link) loses its entry, with a warning: it is computed again,
    never resumed as if measured."""
    good, bad = set(), []
    for c, entry in part_records(run_dir).items():
        problem = records.mismatch(run_dir, part_name(c), entry)
        if problem is None:
            good.add(c)
            continue
        bad.append(c)
        if os.path.lexists(part_path(run_dir, c)):  # a part deleted is simply missing
            log.warning("%s; computing chunk %d again", problem, c)
    if bad:
        records.drop(run_dir, [part_name(c) for c in bad])
    return good


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
    sink = io.BytesIO()
    pq.write_table(table, sink)
    data = sink.getvalue()
    write_atomic_bytes(path, data, fsync=True)
    records.add(run_dir, {part_name(chunk): records.entry_of_bytes(
        data, chunk=chunk, rows=table.num_rows)})  # fmt: skip


def read_part(run_dir: Path, chunk: int, entry: dict | None) -> pa.Table:
    """A part's table, after checking its bytes against its entry (one read for both)."""
    path = part_path(run_dir, chunk)
    data = path.read_bytes() if records.is_regular(path) else b""
    if entry is None:
        problem = f"{path} is not in {records.RECORDS}: the run did not finish it"
    elif _same(data, entry):
        problem = None
    else:
        problem = f"{path} was changed after the run wrote it"
    if problem:
        raise records.EditedRunError(f"{problem}; run the same command again to compute it anew")
    return pq.read_table(pa.BufferReader(data))


def _same(data: bytes, entry: dict) -> bool:
    got = records.entry_of_bytes(data)
    return got["size"] == entry.get("size") and got["sha256"] == entry.get("sha256")


def compact_parts(run_dir: Path, chunks: list[int], out: Path, schema: pa.Schema):
    """Stream the parts, in chunk order, into one Parquet file; one part in memory at a time.

    Returns per-config counts (n, n_errors), per-config seconds and the error rows.
    """
    counts: pd.DataFrame | None = None
    timing: dict[str, float] = {}
    errors = []
    parts = part_records(run_dir)
    fd, tmp_name = temp_beside(out)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as sink, pq.ParquetWriter(sink, schema) as writer:
            for c in chunks:
                table = read_part(run_dir, c, parts.get(c))
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
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    records.add(run_dir, {out.relative_to(run_dir).as_posix(): records.entry_of_file(out)})
    if counts is None:  # a shard that got no chunk (more shards than chunks)
        empty = pd.DataFrame(columns=["sample_id", "config_id", "error_stage", "error"])
        return pd.DataFrame(columns=["n", "n_errors"]), timing, empty
    return counts.astype(int), timing, pd.concat(errors, ignore_index=True)


def write_recorded(run_dir: Path, name: str, data: str | bytes) -> None:
    """Write a run-dir file atomically and enter its sha256 in records.json."""
    raw = data.encode() if isinstance(data, str) else data
    write_atomic_bytes(Path(run_dir) / name, raw)
    records.add(run_dir, {name: records.entry_of_bytes(raw)})


def write_recorded_csv(run_dir: Path, name: str, df: pd.DataFrame) -> None:
    write_recorded(run_dir, name, df.to_csv(index=False))


def stale_temp_files(run_dir: Path) -> list[Path]:
    """Temp files a killed process left (`.NAME.XXXX.tmp`, older `.NAME.tmpPID`): safe to
    remove under the lock. Links are listed too (unlinking one removes only the link)."""
    found = []
    for folder in (run_dir, run_dir / PARTS):
        if folder.is_dir() and not folder.is_symlink():
            found += [p for p in folder.glob(".*.tmp*") if p.is_symlink() or p.is_file()]
    return found
