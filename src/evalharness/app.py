"""The Hydra job: resolve the config into run specs, run the engine, write the tables."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from evalharness.data.dataset import Dataset, load_dataset
from evalharness.models.source import ModelSpec
from evalharness.provenance import versions
from evalharness.registry import UnknownNameError
from evalharness.engine import store
from evalharness.engine.loop import PlanMismatchError, run_sweep
from evalharness.engine.options import SweepOptions, shard_chunks
from evalharness.engine.plan import (
    FACTORS,
    PlanError,
    RunSpec,
    apply_model_card,
    expand,
    explicit_factors,
)
from evalharness.engine.tables import finalize

log = logging.getLogger("evalharness")


def configs_table(specs: list[RunSpec], model: ModelSpec, dataset: Dataset) -> pd.DataFrame:
    rows = []
    for s in specs:
        row: dict[str, Any] = {
            "config_id": s.config_id,
            "model": model.name,
            "dataset": dataset.name,
        }
        row.update(s.factor_dict)
        for stage in s.stages:
            row.update(stage.describe())
        row["variant.placement"] = s.variant.placement
        row["variant.precision"] = s.variant.precision
        rows.append(row)
    return pd.DataFrame(rows)


def sweep_options(cfg: DictConfig) -> SweepOptions:
    shard = cfg.get("shard") or {}
    return SweepOptions(
        chunk_size=int(cfg.chunk_size),
        # A model may ask for its own batch: large activations at batch 64 fall out of cache
        # (EfficientNet-Lite0 on torch: 38 ms/image at batch 1, 100 ms at batch 64).
        batch_size=int(cfg.model.get("batch_size") or cfg.batch_size),
        cache_dir=str(cfg.cache_dir),
        progress=bool(cfg.progress),
        shard_index=int(shard.get("index", 0)),
        shard_count=int(shard.get("count", 1)),
    )


def terminal_table(summary: pd.DataFrame, max_rows: int = 40) -> str:
    varying = [f for f in FACTORS if summary[f].nunique() > 1] or ["backend"]
    t = summary[varying].copy()
    t["top1 [95% CI]"] = [
        f"{a:6.2f} [{lo:5.2f}, {hi:5.2f}]"
        for a, lo, hi in zip(summary.top1, summary.top1_lo, summary.top1_hi, strict=True)
    ]
    t["top5"] = summary.top5.map(lambda v: f"{v:6.2f}")
    t["errors"] = summary.n_errors
    t["img/s"] = summary.images_per_s.map(lambda v: f"{v:7.0f}")
    t = t.iloc[summary.top1.sort_values(ascending=False, kind="stable").index]
    text = t.head(max_rows).to_string(index=False)
    if len(t) > max_rows:
        text += f"\n... {len(t) - max_rows} more rows in summary.csv"
    return text


# Mistakes in what the user asked for: one line on stderr, exit code 2, no traceback.
# EVALHARNESS_DEBUG=1 re-raises them for a full trace.
USER_ERRORS = (FileNotFoundError, PlanError, PlanMismatchError, UnknownNameError, ValueError)


def run_from_hydra(cfg: DictConfig) -> pd.DataFrame | None:
    hc = HydraConfig.get()
    choices = {f: hc.runtime.choices.get(f) for f in FACTORS}
    explicit = explicit_factors(list(hc.overrides.task))
    try:
        return run(cfg, Path(hc.runtime.output_dir), choices, explicit=explicit)
    except USER_ERRORS as e:
        if os.environ.get("EVALHARNESS_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run(
    cfg: DictConfig,
    run_dir: Path,
    choices: dict[str, str],
    quiet: bool = False,
    explicit: set[str] | None = None,
) -> pd.DataFrame:
    """Evaluate the config (or the sweep it names) into run_dir.

    `choices` names the option of each factor group; `explicit` the factors the user chose
    (the others take the model card's reference).
    """
    choices = apply_model_card(cfg, choices, explicit or set())
    model = ModelSpec.from_config(cfg.model)
    dataset = load_dataset(cfg.dataset)
    if model.num_classes != len(dataset.classes):
        raise ValueError(
            f"model '{model.name}' has {model.num_classes} classes, dataset '{dataset.name}' "
            f"has {len(dataset.classes)}"
        )
    specs = expand(cfg, choices, model)
    opts = sweep_options(cfg)
    configs = configs_table(specs, model, dataset)
    run_dir.mkdir(parents=True, exist_ok=True)
    # The resolved config and the option names, so analysis can re-create any config later
    # (on-demand evaluation) without Hydra's own files.
    store.write_atomic_text(run_dir / "run_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    store.write_atomic_text(run_dir / "choices.json", json.dumps(choices, indent=1))
    store.write_atomic_csv(run_dir / "configs.csv", configs)
    log.info("%d config(s) x %d samples -> %s", len(specs), len(dataset), run_dir)
    stats = run_sweep(specs, dataset, run_dir, opts)
    chunks = shard_chunks(len(dataset), opts)
    summary = finalize(run_dir, configs, chunks, dataset.content_hash, versions())
    if not quiet:
        report_to_terminal(summary, run_dir, stats)
    if cfg.get("report") and opts.shard_count == 1:
        from evalharness.report.build import write_report

        print(f"report: {write_report(run_dir)}")
    return summary


def report_to_terminal(summary: pd.DataFrame, run_dir: Path, stats: dict) -> None:
    print(terminal_table(summary))
    n_err = int(summary.n_errors.sum())
    if n_err:
        errors = pd.read_csv(run_dir / "errors.csv")
        by_stage = errors.groupby("stage").sample_id.nunique().to_dict()
        print(
            f"errors: {n_err} error rows on {errors.sample_id.nunique()} samples {by_stage}; "
            f"see {run_dir / 'errors.csv'}"
        )
    print(
        f"results: {run_dir} (summary.csv, predictions.parquet; "
        f"{stats['chunks_computed']} chunk(s) computed, {stats['chunks_resumed']} resumed)"
    )
