"""RunPlan -> a claimed run dir -> the engine -> the tables.

`execute` is everything between a plan and its results: the tracker checked, the run dir
locked and checked before anything is written in it (a refused run leaves it as it was),
the plan recorded, the engine run, the parts compacted into summary.csv and
predictions.parquet. What a whole sweep does after is runner/finish.py. Both return data;
commands print it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evalharness.config.runplan import RunPlan
from evalharness.engine.loop import plan_record, run_sweep
from evalharness.engine.tables import configs_table, finalize
from evalharness.engine.versions import library_versions
from evalharness.rundir.claim import claim
from evalharness.tracking import check_tracking


@dataclass
class Outcome:
    """What a run wrote: its summary rows and the work done (stats.json)."""

    run_dir: Path
    summary: pd.DataFrame
    stats: dict[str, Any]


def record_files(plan: RunPlan) -> dict[str, str]:
    """The run's own record of its plan, written at the claim: the resolved config and the
    option names (so analysis can plan any config of the run again without Hydra), the
    configs, the factor columns, and which images int8 calibrated on."""
    from omegaconf import OmegaConf

    settings = {"factors": list(plan.columns), "settings": dict(plan.settings)}
    if plan.user_dirs:
        settings["config_dirs"] = list(plan.user_dirs)
    files = {
        "run_config.yaml": OmegaConf.to_yaml(OmegaConf.create(dict(plan.config))),
        "choices.json": json.dumps(dict(plan.choices), indent=1),
        "configs.csv": configs_table(plan).to_csv(index=False),
        "factors.json": json.dumps(settings, indent=1),
    }
    if plan.calibration is not None:
        files["calibration.csv"] = pd.DataFrame(
            {
                "sample_id": [c.sample_id for c in plan.calibration.samples],
                "source": plan.calibration.source,
            }
        ).to_csv(index=False)
    return files


def execute(plan: RunPlan, run_dir: Path) -> Outcome:
    """Evaluate the plan into run_dir (resuming what a killed run of the same plan left)."""
    run_dir = Path(run_dir)
    check_tracking(plan.tracking)  # a missing tracker is named before any work
    with claim(run_dir, plan_record(plan), record_files(plan)):
        stats = run_sweep(plan, run_dir)
        summary = finalize(
            run_dir, configs_table(plan), plan_chunks(plan), plan.dataset.content_hash,
            library_versions(), plan.task, list(plan.columns), plan.dataset,
            plan.dataset.hash_mode,
        )  # fmt: skip
    return Outcome(run_dir, summary, stats)


def plan_chunks(plan: RunPlan) -> list[int]:
    from evalharness.config.options import shard_chunks

    return shard_chunks(len(plan.dataset), plan.options)
