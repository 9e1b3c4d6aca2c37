"""`python -m evalharness.merge OUT SHARD_DIR...`: shards of one sweep -> one run dir.

The result equals a single-process run of the same sweep (predictions, summary accuracies,
errors); only timings differ. Refused: shards of different sweeps, a shard count that does
not match, a missing or repeated shard index, and a shard with unfinished chunks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from evalharness.engine import store
from evalharness.engine.options import SweepOptions, shard_chunks, stable_hash
from evalharness.engine.tables import finalize

# Nodes of one cluster may differ in CPU; anything else that differs changes the numbers.
MAY_DIFFER = {"cpu"}


class MergeError(ValueError):
    pass


def _plan(d: Path) -> dict:
    path = d / "plan.json"
    if not path.exists():
        raise MergeError(f"{d}: no plan.json, not a run dir")
    return json.loads(path.read_text())


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
        todo = set(shard_chunks(p["n_samples"], opts)) - store.done_chunks(d)
        if todo:
            raise MergeError(
                f"{d}: shard {p['shard_index']} is unfinished, chunks {sorted(todo)[:5]}"
            )
    return plans


def shard_versions(dirs: list[Path]) -> dict[str, str]:
    """The library versions the shards ran with (summary.csv's v_* columns), which the
    merged summary reports; shards that ran different versions are refused."""
    seen: dict[str, dict[str, Path]] = {}
    for d in dirs:
        path = d / "summary.csv"
        if not path.exists():
            raise MergeError(f"{d}: no summary.csv; run the shard again to finish it")
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


def merge(out: Path, dirs: list[Path]) -> pd.DataFrame:
    dirs = [Path(d) for d in dirs]
    plans = check_shards(dirs)
    versions = shard_versions(dirs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "parts").mkdir(exist_ok=True)
    for d in dirs:
        for part in (d / "parts").glob("chunk-*.parquet"):
            shutil.copy2(part, out / "parts" / part.name)
    first = dirs[0]
    for name in ("configs.csv", "run_config.yaml", "choices.json", "variants.json"):
        if (first / name).exists():
            shutil.copy2(first / name, out / name)
    # The plan a single-process run of this sweep has, so the merged dir is one like it.
    plan = {k: v for k, v in plans[0].items() if k not in ("plan_hash", "merged_from")}
    plan.update(shard_index=0, shard_count=1)
    plan["plan_hash"] = stable_hash(plan)
    plan["merged_from"] = [str(d) for d in dirs]
    store.write_atomic_text(out / "plan.json", json.dumps(plan, indent=1))
    configs = pd.read_csv(out / "configs.csv")
    chunks = shard_chunks(plan["n_samples"], SweepOptions(chunk_size=plan["chunk_size"]))
    return finalize(out, configs, chunks, plan["dataset_hash"], versions)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("shards", type=Path, nargs="+")
    args = ap.parse_args(argv)
    try:
        summary = merge(args.out, args.shards)
    except MergeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"merged {len(args.shards)} shard(s) into {args.out}: {len(summary)} configs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
