"""Shards of one sweep -> one run dir (the library behind `evalharness merge OUT SHARDS...`).

The result equals a single-process run of the same sweep (predictions, summary metrics,
errors); only timings differ. Refused, with one line and nothing written: shards of
different sweeps, a shard count that does not match, a missing or repeated shard index, a
shard with unfinished chunks, a part file whose rows or bytes are not what its shard
recorded (edited, truncated, duplicated rows), shards that ran different library versions,
an OUT that is one of the shards, and an OUT that holds another sweep.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from evalharness.config.options import SweepOptions, shard_chunks, stable_hash
from evalharness.engine.tables import finalize
from evalharness.rundir import records, store
from evalharness.rundir.claim import PlanMismatchError, RunDirBusyError, claim
from evalharness.rundir.summary import summary_factors

# Nodes of one cluster may differ in CPU; anything else that differs changes the numbers.
MAY_DIFFER = {"cpu"}
COPIED = (
    "configs.csv",
    "run_config.yaml",
    "choices.json",
    "factors.json",
    "variants.json",
    "calibration.csv",
)


class MergeError(ValueError):
    pass


def _plan(d: Path) -> dict:
    path = d / "plan.json"
    if not path.exists():
        raise MergeError(f"{d}: no plan.json, not a run dir")
    if not records.is_run_dir(d):
        raise MergeError(f"{d}: no records.json (a shard written before evalharness recorded "
                         "its files, or not a shard): run the shard again")  # fmt: skip
    problem = records.mismatch(d, "plan.json", records.entries(d).get("plan.json"))
    if problem:
        raise MergeError(problem)
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise MergeError(f"{path} is not readable JSON") from None


def check_part(d: Path, chunk: int, record: dict, n_configs: int, n_samples: int, size: int):
    """A part is what its shard recorded: same bytes, the expected rows, no duplicates."""
    path = store.part_path(d, chunk)
    if records.mismatch(d, store.part_name(chunk), record):
        raise MergeError(f"{path}: its content is not what the shard recorded (edited or "
                         "truncated); run the shard again")  # fmt: skip
    try:
        table = pq.read_table(path, columns=["sample_id", "config_id"]).to_pandas()
    except Exception as e:
        raise MergeError(f"{path}: unreadable part ({type(e).__name__})") from None
    first = chunk * size
    expected = (min(first + size, n_samples) - first) * n_configs
    if len(table) != expected or len(table) != record.get("rows"):
        raise MergeError(f"{path}: {len(table)} rows, expected {expected}")
    if table.duplicated().any():
        raise MergeError(f"{path}: repeated (sample, config) rows")


def check_shards(dirs: list[Path]) -> list[dict]:
    plans = [_plan(d) for d in dirs]
    sweeps = {p["sweep_hash"] for p in plans}
    if len(sweeps) > 1:
        raise MergeError(f"shards come from different sweeps: {sorted(sweeps)}")
    counts = {p["shard_count"] for p in plans}
    if len(counts) > 1:
        raise MergeError(f"shards disagree on shard.count: {sorted(counts)}")
    count = counts.pop()
    indices = sorted(p["shard_index"] for p in plans)
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        repeated = sorted({i for i in indices if indices.count(i) > 1})
        raise MergeError(
            f"shard indices {indices} of {count}: missing {missing}, repeated {repeated}"
        )
    for d, p in zip(dirs, plans, strict=True):
        opts = SweepOptions(
            chunk_size=p["chunk_size"], shard_index=p["shard_index"], shard_count=count
        )
        mine = shard_chunks(p["n_samples"], opts)
        records = store.part_records(d)
        todo = set(mine) - store.done_chunks(d)
        if todo:
            raise MergeError(
                f"{d}: shard {p['shard_index']} is unfinished, chunks {sorted(todo)[:5]}"
            )
        for c in mine:
            check_part(d, c, records[c], len(p["config_ids"]), p["n_samples"], p["chunk_size"])
    return plans


def shard_versions(dirs: list[Path]) -> dict[str, str]:
    """The library versions the shards ran with (summary.csv's v_* columns), which the
    merged summary reports; shards that ran different versions are refused."""
    seen: dict[str, dict[str, Path]] = {}
    for d in dirs:
        path = d / "summary.csv"
        if not path.exists():
            raise MergeError(f"{d}: no summary.csv; run the shard again to finish it")
        problem = records.mismatch(d, "summary.csv", records.entries(d).get("summary.csv"))
        if problem:
            raise MergeError(f"{problem}; run the shard again")
        row = pd.read_csv(path, nrows=1, dtype=str, keep_default_na=False)
        if row.empty:  # a shard that drew no chunk ran nothing: no versions to report
            continue
        for col in (c for c in row.columns if c.startswith("v_")):
            seen.setdefault(col[2:], {}).setdefault(row[col].iloc[0], d)
    for lib, values in seen.items():
        if len(values) > 1 and lib not in MAY_DIFFER:
            where = "; ".join(f"{v!r} in {d}" for v, d in values.items())
            raise MergeError(f"shards ran different {lib} versions ({where})")
    return {lib: " | ".join(values) for lib, values in seen.items()}


def _check_out(out: Path, dirs: list[Path]) -> None:
    target = out.resolve()
    for d in dirs:
        d = d.resolve()
        if target == d or d in target.parents or target in d.parents:
            raise MergeError(f"{out} is (inside) shard dir {d}: merge into a new folder")


def copy_parts(shard: Path, out: Path) -> None:
    """The shard's checked parts into out, each entered in out's records.json as it lands."""
    done = store.done_chunks(out)
    for c, entry in sorted(store.part_records(shard).items()):
        if c in done or not records.is_regular(store.part_path(shard, c)):
            continue
        data = store.part_path(shard, c).read_bytes()
        if records.entry_of_bytes(data) != {k: entry.get(k) for k in ("sha256", "size")}:
            raise MergeError(f"{store.part_path(shard, c)} changed while merging")
        store.write_atomic_bytes(store.part_path(out, c), data, fsync=True)
        records.add(out, {store.part_name(c): dict(entry)})


def merge(out: Path, dirs: list[Path]) -> pd.DataFrame:
    from evalharness.analysis.results import run_dataset, task_of_run

    out, dirs = Path(out), [Path(d) for d in dirs]
    _check_out(out, dirs)
    plans = check_shards(dirs)
    versions = shard_versions(dirs)
    first = dirs[0]
    # The plan a single-process run of this sweep has, so the merged dir is one like it.
    plan = {k: v for k, v in plans[0].items() if k not in ("plan_hash", "merged_from")}
    plan.update(shard_index=0, shard_count=1)
    plan["plan_hash"] = stable_hash(plan)
    plan["merged_from"] = [str(d) for d in dirs]
    problems = [records.mismatch(first, n, records.entries(first).get(n))
                for n in COPIED if (first / n).exists()]  # fmt: skip
    if any(problems):
        raise MergeError(next(p for p in problems if p))
    files = {n: (first / n).read_text() for n in COPIED if (first / n).exists()}
    try:
        with claim(out, plan, files):
            (out / store.PARTS).mkdir(exist_ok=True)
            for d in dirs:
                copy_parts(d, out)
            configs = pd.read_csv(out / "configs.csv", dtype=str, keep_default_na=False)
            configs["reference"] = configs["reference"] == "True"
            chunks = shard_chunks(plan["n_samples"], SweepOptions(chunk_size=plan["chunk_size"]))
            return finalize(
                out, configs, chunks, plan["dataset_hash"], versions, task_of_run(out),
                summary_factors(configs), run_dataset(out),
            )  # fmt: skip
    except (PlanMismatchError, RunDirBusyError) as e:
        raise MergeError(str(e)) from None


def finish_merged(out: Path):
    """What a whole sweep does after its tables, as the shards' config asked: findings (no
    coalition evaluated: merging loads no backend), report=true, tracking=mlflow (logged
    once, for the merged sweep; a shard logs nothing: it is not the sweep)."""
    from evalharness.analysis.findings import write_findings
    from evalharness.analysis.ondemand import NoConfigs
    from evalharness.rundir.read import run_config
    from evalharness.runner.finish import Finished, report_and_track

    done = Finished(findings=write_findings(out))
    if (out / "run_config.yaml").exists():
        done.report, done.tracking, done.tracking_error = report_and_track(
            out, run_config(out), NoConfigs()
        )
    return done
