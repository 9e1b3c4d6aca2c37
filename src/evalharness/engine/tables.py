"""The run dir's tables from its part files: predictions.parquet, summary.csv, errors.csv.

Light on purpose (pandas and pyarrow): `merge` compacts shards with it without loading any
backend, and the library versions come in from whoever ran the sweep.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from evalharness.analysis.metrics import summarize
from evalharness.registry import FACTORS
from evalharness.engine import store


def finalize(
    run_dir: Path,
    configs: pd.DataFrame,
    chunks: list[int],
    dataset_hash: str,
    library_versions: dict[str, str],
) -> pd.DataFrame:
    """Compact the parts into predictions.parquet, summary.csv and errors.csv.

    `library_versions` become the v_* columns: those of the process that ran the sweep.

    Streams: memory holds one part at a time, whatever the number of samples. Rows are in
    chunk order, then config order, then sample order -- the same for a resumed, a sharded
    and merged, and an uninterrupted run.
    """
    counts, timing, error_rows = store.compact_parts(
        run_dir, chunks, run_dir / "predictions.parquet"
    )
    factor_cols = ["config_id", "model", "dataset", *FACTORS]
    summary = configs[factor_cols].merge(summarize(counts, timing), on="config_id")
    ran_file = run_dir / "variants.json"
    if ran_file.exists():  # the precision the backend really ran (OpenVINO may fall back)
        ran = json.loads(ran_file.read_text())
        summary.insert(
            summary.columns.get_loc("precision") + 1, "precision_ran", summary.config_id.map(ran)
        )
    for k, v in library_versions.items():
        summary[f"v_{k}"] = v
    summary["dataset_hash"] = dataset_hash[:16]
    store.write_atomic_csv(run_dir / "summary.csv", summary)
    errors = error_digest(error_rows)
    store.write_atomic_csv(run_dir / "errors.csv", errors)
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
