"""The Hydra job: resolve the config into run specs, claim the run dir, run the engine,
write the tables."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from evalharness.analysis.findings import write_findings
from evalharness.backends.base import MissingRuntimeError
from evalharness.data.dataset import Dataset, load_dataset
from evalharness.engine.claim import PlanMismatchError, RunDirBusyError, claim
from evalharness.engine.loop import fit_chunk, plan_record, run_sweep
from evalharness.engine.options import SweepOptions, positive_int, resolve_workers, shard_chunks
from evalharness.engine.plan import (
    FACTORS,
    PlanError,
    RunSpec,
    apply_model_card,
    expand,
    explicit_factors,
    setting_column,
)
from evalharness.engine.tables import finalize, summary_factors
from evalharness.models.source import ModelSpec
from evalharness.provenance import versions
from evalharness.registry import UnknownNameError
from evalharness.tasks.base import Task, get_task
from evalharness.tracking import check_tracking, log_sweep

log = logging.getLogger("evalharness")


def factor_columns(specs: list[RunSpec]) -> list[str]:
    """FACTORS, then any swept settings (limit_side_len, ...), in first-seen order."""
    cols = list(FACTORS)
    for s in specs:
        cols += [k for k, _ in s.factors if k not in cols]
    return cols


def configs_table(specs: list[RunSpec], model: ModelSpec, dataset: Dataset) -> pd.DataFrame:
    rows = []
    for s in specs:
        row: dict[str, Any] = {
            "config_id": s.config_id,
            "model": model.name,
            "dataset": dataset.name,
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


def sweep_options(cfg: DictConfig) -> SweepOptions:
    shard = cfg.get("shard") or {}
    # A model may ask for its own batch: large activations at batch 64 fall out of cache
    # (EfficientNet-Lite0 on torch: 38 ms/image at batch 1, 100 ms at batch 64).
    batch = cfg.model.get("batch_size") or cfg.batch_size
    return SweepOptions(
        chunk_size=cfg.chunk_size,
        batch_size=batch,
        gpu_batch_size=cfg.batch_size,
        cache_dir=str(cfg.cache_dir),
        progress=bool(cfg.progress),
        shard_index=shard.get("index", 0),
        shard_count=shard.get("count", 1),
        workers=resolve_workers(cfg.get("workers", "auto")),
        dedup=bool(cfg.get("dedup", True)),
        memory_budget=memory_bytes(cfg.get("memory_budget", 1_500_000_000)),
    )


def memory_bytes(value) -> int:
    """memory_budget: bytes as a number (1.5e9) or with a unit ("1.5GB", "800MB")."""
    text = str(value).strip().upper()
    units = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    for unit, scale in units.items():
        if text.endswith(unit):
            try:
                return int(float(text[: -len(unit)]) * scale)
            except ValueError:
                break
    try:
        return int(float(text))
    except ValueError:
        raise ValueError(
            f"memory_budget must be bytes (1.5e9) or like 1.5GB, got {value!r}"
        ) from None


def check_settings(cfg: DictConfig) -> None:
    """Numbers a config cannot run with, named at composition time (rc 2, one line)."""
    positive_int("threads", cfg.threads)


def terminal_table(summary: pd.DataFrame, task: Task, max_rows: int = 40) -> str:
    factors = summary_factors(summary)
    varying = [f for f in factors if summary[f].nunique() > 1] or ["backend"]
    t = summary[varying].copy()
    m = task.metric
    if f"{m}_lo" in summary:
        t[f"{m} [95% CI]"] = [
            f"{a:6.2f} [{lo:5.2f}, {hi:5.2f}]"
            for a, lo, hi in zip(summary[m], summary[f"{m}_lo"], summary[f"{m}_hi"], strict=True)
        ]
    for col in task.metric_columns:
        if col != m and not col.endswith(("_lo", "_hi")):
            t[col] = summary[col].map(lambda v: f"{v:6.2f}")
    t["agree_ref"] = summary.agree_ref.map(lambda v: f"{v:6.2f}")
    t["errors"] = summary.n_errors
    t["img/s"] = summary.images_per_s.map(lambda v: f"{v:7.0f}")
    t.insert(0, "", summary.reference.map(lambda r: "ref" if r else ""))
    t = t.iloc[summary[m].sort_values(ascending=False, kind="stable").index]
    text = t.head(max_rows).to_string(index=False)
    if len(t) > max_rows:
        text += f"\n... {len(t) - max_rows} more rows in summary.csv"
    return text


# Mistakes in what the user asked for: one line on stderr, exit code 2, no traceback.
# EVALHARNESS_DEBUG=1 re-raises them for a full trace.
USER_ERRORS = (
    FileNotFoundError,
    PlanError,
    PlanMismatchError,
    RunDirBusyError,
    UnknownNameError,
    MissingRuntimeError,
    ValueError,
)


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
    except OSError as e:  # a full disk, a read-only run dir: what and where, not a trace
        if os.environ.get("EVALHARNESS_DEBUG"):
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        sys.exit(2)


def prepare(cfg: DictConfig, choices: dict[str, str], explicit: set[str] | None = None):
    """Everything a run needs, checked, before anything is written: specs, dataset, task."""
    choices = apply_model_card(cfg, choices, explicit or set())
    check_settings(cfg)
    check_tracking(cfg.get("tracking"))
    opts = sweep_options(cfg)
    model = ModelSpec.from_config(cfg.model)
    dataset = load_dataset(cfg.dataset)
    task = get_task(model.task, model)
    if dataset.task != model.task:
        raise ValueError(
            f"model '{model.name}' is a {model.task} model, dataset '{dataset.name}' is a "
            f"{dataset.task} dataset"
        )
    task.check_dataset(dataset, model)
    specs = expand(cfg, choices, model)
    calib: list = []
    if any(s.variant.option("calibrate") for s in specs) or cfg.calibration.get("held_out"):
        calib, dataset, key = calibration_set(cfg, dataset)
        specs = expand(cfg, choices, model, calibration_key=key)
    opts = fit_chunk(specs, opts)
    return choices, model, dataset, task, specs, opts, calib


def calibration_set(cfg: DictConfig, dataset: Dataset):
    """The calibration images, the dataset left to score, and the key naming the set.

    Held out of the evaluation set by default (recorded in the run config, so shards and
    on-demand runs of this run hold out the very same images), or from calibration.dataset.
    """
    from evalharness.engine.calibration import calibration_key, choose, hold_out
    from evalharness.engine.plan import load_option

    n = positive_int("calibration.n", cfg.calibration.n)
    if cfg.calibration.get("dataset"):
        source = load_dataset(load_option("dataset", str(cfg.calibration.dataset)))
        calib = choose(source, n)
        return calib, dataset, calibration_key(calib, source.content_hash)
    calib = choose(dataset, n)
    with open_dict(cfg):
        cfg.calibration.held_out = True
    return calib, hold_out(dataset, calib), calibration_key(calib, dataset.content_hash)


def run(
    cfg: DictConfig,
    run_dir: Path,
    choices: dict[str, str],
    quiet: bool = False,
    explicit: set[str] | None = None,
) -> pd.DataFrame:
    """Evaluate the config (or the sweep it names) into run_dir.

    `choices` names the option of each factor group; `explicit` the factors the user chose
    (the others take the model card's reference). The run dir is locked and checked before
    anything is written in it: a refused run leaves it as it was.
    """
    choices, model, dataset, task, specs, opts, calib = prepare(cfg, choices, explicit)
    configs = configs_table(specs, model, dataset)
    plan = plan_record(specs, dataset, opts)
    columns = factor_columns(specs)
    settings = {
        setting_column(k): k for k in (cfg.get("sweep") or {}).get("factors", {}) if "." in k
    }
    files = {
        # The resolved config and the option names, so analysis can re-create any config
        # later (on-demand evaluation) without Hydra's own files.
        "run_config.yaml": OmegaConf.to_yaml(cfg, resolve=True),
        "choices.json": json.dumps(choices, indent=1),
        "configs.csv": configs.to_csv(index=False),
        "factors.json": json.dumps({"factors": columns, "settings": settings}, indent=1),
    }
    if calib:  # which images int8 calibrated on: held out of every config, or another set
        other = cfg.calibration.get("dataset")
        source = f"of {other}" if other else f"held out of {dataset.name}"
        files["calibration.csv"] = pd.DataFrame(
            {"sample_id": [c.sample_id for c in calib], "source": source}
        ).to_csv(index=False)
    with claim(Path(run_dir), plan, files):
        log.info("%d config(s) x %d samples -> %s", len(specs), len(dataset), run_dir)
        stats = run_sweep(specs, dataset, Path(run_dir), opts, task, calibrator(calib))
        chunks = shard_chunks(len(dataset), opts)
        summary = finalize(
            Path(run_dir), configs, chunks, dataset.content_hash, versions(), task, columns,
            dataset, dataset.hash_mode,
        )  # fmt: skip
    if not quiet:
        report_to_terminal(summary, Path(run_dir), stats, task)
    if not quiet and opts.shard_count == 1:
        print(write_findings(Path(run_dir), dataset), end="")
    if cfg.get("report") and opts.shard_count == 1:
        from evalharness.report.build import write_report

        print(f"report: {write_report(Path(run_dir))}")
    if not quiet and opts.shard_count == 1:
        logged = log_sweep(cfg, Path(run_dir))
        if logged:
            print(logged)
    return summary


def calibrator(calib: list):
    """spec -> its own host tensors of the calibration images (None: nothing calibrates)."""
    if not calib:
        return None
    from evalharness.engine.calibration import tensors

    return lambda spec: tensors(spec, calib)


def report_to_terminal(summary: pd.DataFrame, run_dir: Path, stats: dict, task: Task) -> None:
    print(terminal_table(summary, task))
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
