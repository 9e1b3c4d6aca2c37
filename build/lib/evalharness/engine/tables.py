"""The run dir's tables from its part files: predictions.parquet, summary.csv, errors.csv.

Light on purpose (pandas, pyarrow, the task module): `merge` compacts shards with it without
loading any backend, and the library versions come in from whoever ran the sweep.

summary.csv, one row per config: the factor columns (and swept settings), `reference`
(the model card's reference config), n, n_errors, the task's metric columns with their
intervals, `agree_ref` (share of images whose outcome equals the reference's, Wilson
interval), images/s, the precision that really ran, notes, library versions, dataset hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from evalharness.rundir import store
from evalharness.stats.intervals import wilson_interval
from evalharness.stats.paired import bootstrap_indices
from evalharness.tasks.base import Task

SUMMARY_BOOTSTRAP = 1000  # resamples for intervals of metrics that are not proportions


def configs_table(plan) -> pd.DataFrame:
    """configs.csv: config_id, factor columns, every resolved stage setting, the variant."""
    rows = []
    for s in plan.specs:
        row: dict[str, Any] = {
            "config_id": s.config_id,
            "model": plan.model.name,
            "dataset": plan.dataset.name,
        }
        row.update(s.factor_dict)
        row["reference"] = s.is_reference
        for stage in s.stages:
            row.update(stage.describe())
        row["variant.placement"] = s.variant.placement
        row["variant.precision"] = s.variant.precision
        row["variant.device"] = s.variant.device
        row["variant.options"] = json.dumps(dict(s.variant.options), default=str)
        rows.append(row)
    return pd.DataFrame(rows)


def config_predictions(run_dir: Path, task: Task) -> dict[str, pd.DataFrame]:
    """Each config's prediction rows (task columns), in sample order."""
    cols = [n for n in task.schema.names if n not in ("sample_id", "error")]
    table = pq.read_table(run_dir / "predictions.parquet", columns=cols).to_pandas()
    return {
        cid: g.sort_values("sample_index", kind="stable").reset_index(drop=True)
        for cid, g in table.groupby("config_id", sort=False)
    }


def agreement(task: Task, records: dict, ref_id: str | None) -> pd.DataFrame:
    """agree_ref with its Wilson interval for every config (NaN without a reference)."""
    rows = {}
    for cid, rec in records.items():
        if ref_id is None or ref_id not in records:
            rows[cid] = dict(agree_ref=np.nan, agree_ref_lo=np.nan, agree_ref_hi=np.nan)
            continue
        same = task.agree(records[ref_id], rec)
        k, n = int(same.sum()), len(same)
        lo, hi = wilson_interval(k, n)
        rows[cid] = dict(agree_ref=k / n * 100, agree_ref_lo=lo * 100, agree_ref_hi=hi * 100)
    return pd.DataFrame.from_dict(rows, orient="index")


def finalize(
    run_dir: Path,
    configs: pd.DataFrame,
    chunks: list[int],
    dataset_hash: str,
    library_versions: dict[str, str],
    task: Task,
    factor_cols: list[str],
    dataset=None,
    hash_mode: str = "content",
) -> pd.DataFrame:
    """Compact the parts into predictions.parquet, summary.csv and errors.csv.

    `library_versions` become the v_* columns: those of the process that ran the sweep.

    Streams the compaction: memory holds one part at a time. Rows are in chunk order, then
    config order, then sample order -- the same for a resumed, a sharded and merged, and an
    uninterrupted run.
    """
    counts, timing, error_rows = store.compact_parts(
        run_dir, chunks, run_dir / "predictions.parquet", task.schema
    )
    cols = ["config_id", "model", "dataset", *factor_cols, "reference"]
    summary = configs[[c for c in cols if c in configs.columns]].copy()
    summary = summary[summary.config_id.isin(counts.index)]
    metrics = summary_metrics(run_dir, task, dataset, configs, counts)
    summary = summary.merge(metrics, left_on="config_id", right_index=True, how="left")
    summary = with_throughput(summary, timing)
    ran_file = run_dir / "variants.json"
    if ran_file.exists():  # the precision the backend really ran (OpenVINO may fall back)
        ran = json.loads(ran_file.read_text())
        summary.insert(
            summary.columns.get_loc("reference") + 1,
            "precision_ran",
            summary.config_id.map(lambda c: ran.get(c, {}).get("precision_ran")),
        )
        summary["notes"] = summary.config_id.map(
            lambda c: "; ".join(ran.get(c, {}).get("notes", []))
        )
    for k, v in library_versions.items():
        summary[f"v_{k}"] = v
    summary["dataset_hash"] = dataset_hash[:16]
    summary["dataset_hash_mode"] = hash_mode
    store.write_atomic_csv(run_dir / "summary.csv", summary)
    store.write_atomic_csv(run_dir / "errors.csv", error_digest(error_rows))
    return summary.reset_index(drop=True)


def summary_metrics(run_dir: Path, task: Task, dataset, configs: pd.DataFrame, counts):
    """n, n_errors, the task's metric columns, agree_ref, images/s per config."""
    if counts.empty:  # a shard that drew no chunk: no rows, but the columns and key type
        empty = pd.Index([], dtype=object, name="config_id")
        return pd.DataFrame(columns=["n", "n_errors", *task.metric_columns, "agree_ref"],
                            index=empty)  # fmt: skip
    preds = config_predictions(run_dir, task)
    n = len(next(iter(preds.values())))
    idx = bootstrap_indices(n, SUMMARY_BOOTSTRAP)
    rows, records = {}, {}
    for cid, rows_c in preds.items():
        rows[cid] = task.summarize(rows_c, dataset, idx)
        records[cid] = task.records(rows_c, dataset)
    out = counts.join(pd.DataFrame.from_dict(rows, orient="index"))
    ref = configs.config_id[configs["reference"].astype(bool)] if "reference" in configs else []
    out = out.join(agreement(task, records, ref.iloc[0] if len(ref) else None))
    return out


def with_throughput(summary: pd.DataFrame, timing: dict[str, float]) -> pd.DataFrame:
    secs = summary.config_id.map(timing)
    summary["images_per_s"] = np.where(secs > 0, summary.n / secs, np.nan)
    return summary


def error_digest(bad: pd.DataFrame) -> pd.DataFrame:
    """One row per (sample, stage, reason), with how many configs hit it."""
    if bad.empty:
        return pd.DataFrame(columns=["sample_id", "stage", "reason", "n_configs"])
    g = bad.groupby(["sample_id", "error_stage", "error"], sort=True).size()
    return (
        g.rename("n_configs")
        .reset_index()
        .rename(columns={"error_stage": "stage", "error": "reason"})
    )
