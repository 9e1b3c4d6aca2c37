"""A finished run dir as the analysis sees it: summary rows and per-config image records.

What a record is belongs to the task (classification: top-1 correctness per image; detection:
COCO match records; text detection: per-image TP/FP/FN). The analysis only asks the task for
the metric on resamples of images (`value`) and per-image scores (`image_scores`), so the
same effects, pairs and Shapley code serves every task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from evalharness.config.compose import store_for
from evalharness.config.plan import canonical_settings
from evalharness.data.dataset import Dataset, load_dataset
from evalharness.rundir.read import (
    dataset_settings,
    model_settings,
    run_choices,
    run_settings,
    run_user_dirs,
)
from evalharness.rundir.summary import read_summary, summary_factors
from evalharness.tasks.base import Task, get_task


def task_of_run(run_dir: Path) -> Task:
    """The run's task, bound to its model's post-processing settings (from run_config.yaml:
    no model file is needed to analyse a run)."""
    model = model_settings(run_dir)
    post = dict(model.get("postprocess") or {})
    stub = SimpleNamespace(name=str(model["name"]), postprocess=tuple(sorted(post.items())))
    return get_task(str(model.get("task", "classification")), stub)


def run_dataset(run_dir: Path) -> Dataset | None:
    """The run's dataset as its config names it, or None when it cannot be read here."""
    try:
        return load_dataset(dataset_settings(run_dir))
    except (OSError, ValueError):
        return None


def canonical_for(run_dir: Path) -> Callable[[dict[str, str]], dict[str, str]]:
    """Spells a config as the run's rows do (a setting the option lacks reads "-")."""
    settings = run_settings(run_dir)
    card = model_settings(run_dir).get("card") or {}
    store = store_for(run_user_dirs(run_dir))
    return lambda config: canonical_settings(config, settings, card, store)


@dataclass
class RunResults:
    summary: pd.DataFrame  # one row per config
    task: Task
    records: dict[str, Any]  # config_id -> the task's per-image records (sample order)
    sample_ids: list[str]
    labels: np.ndarray  # classification labels (-1 elsewhere)
    extra_factors: list[str] = field(default_factory=list)
    # spells a config as the rows do (a setting the option lacks reads "-"): run dirs set it
    canonical: Callable[[dict[str, str]], dict[str, str]] | None = None

    @classmethod
    def load(cls, run_dir: Path, dataset=None) -> RunResults:
        run_dir = Path(run_dir)
        for name in ("summary.csv", "predictions.parquet", "run_config.yaml"):
            if not (run_dir / name).exists():
                raise FileNotFoundError(f"{run_dir / name} not found: is this a finished run dir?")
        task = task_of_run(run_dir)
        summary = read_summary(run_dir / "summary.csv")
        cols = [n for n in task.schema.names if n != "error"]
        preds = pq.read_table(run_dir / "predictions.parquet", columns=cols).to_pandas()
        res = cls.from_frames(summary, preds, task, dataset)
        if (run_dir / "factors.json").exists() and (run_dir / "choices.json").exists():
            res.canonical = canonical_for(run_dir)
        return res

    @classmethod
    def from_frames(cls, summary: pd.DataFrame, preds: pd.DataFrame, task: Task, dataset=None):
        preds = preds.sort_values(["config_id", "sample_index"], kind="stable")
        records, ids, labels = {}, None, None
        for cid, rows in preds.groupby("config_id", sort=False):
            rows = rows.reset_index(drop=True)
            records[cid] = task.records(rows, dataset)
            if ids is None:
                ids = rows.sample_id.astype(str).tolist()
                labels = rows.label.to_numpy() if "label" in rows else np.full(len(rows), -1)
        summary = summary[summary.config_id.isin(records)].reset_index(drop=True)
        return cls(
            summary, task, records, ids or [], labels if labels is not None else np.array([])
        )

    def merged(self, other: RunResults) -> RunResults:
        """Add configs evaluated elsewhere on the same samples (e.g. on demand)."""
        if other.sample_ids != self.sample_ids:
            raise ValueError("cannot merge runs over different samples")
        new = ~other.summary.config_id.isin(self.summary.config_id)
        summary = pd.concat([self.summary, other.summary[new]], ignore_index=True)
        records = {**other.records, **self.records}
        return RunResults(summary, self.task, records, self.sample_ids, self.labels,
                          canonical=self.canonical)  # fmt: skip

    @property
    def metric(self) -> str:
        return self.task.metric

    @property
    def factors(self) -> list[str]:
        return summary_factors(self.summary)

    def varying_factors(self) -> list[str]:
        return [f for f in self.factors if self.summary[f].nunique() > 1]

    def find(self, config: dict[str, str]) -> str | None:
        """config_id of the row matching every factor in `config`, if the run has one.

        Every factor column (swept settings included) must match: two configs that differ
        only in a sub-setting (limit_side_len) are never conflated."""
        if self.canonical is not None:
            config = self.canonical(config)
        mask = np.ones(len(self.summary), bool)
        for f in self.factors:
            if f in config:
                mask &= (self.summary[f].astype(str) == str(config[f])).to_numpy()
        ids = self.summary.config_id[mask]
        return None if ids.empty else str(ids.iloc[0])

    def reference_id(self) -> str | None:
        if "reference" not in self.summary:
            return None
        ids = self.summary.config_id[self.summary.reference.astype(str) == "True"]
        return None if ids.empty else str(ids.iloc[0])

    def factors_of(self, config_id: str) -> dict[str, str]:
        row = self.summary.set_index("config_id").loc[config_id]
        return {f: str(row[f]) for f in self.factors}

    def values(self, config_id: str, idx: np.ndarray) -> np.ndarray:
        """[point estimate, metric on each resample of idx]: what every interval is made of."""
        rec = self.records[config_id]
        return np.concatenate([[self.task.point(rec)], self.task.value(rec, idx)])

    def scores(self, config_id: str) -> np.ndarray:
        """Per-image scores (classification: 1/0 correct) for sign tests and flips."""
        return self.task.image_scores(self.records[config_id])

    @property
    def correct(self) -> pd.DataFrame:
        """config_id x image table of per-image scores (top-1 correctness for classification)."""
        return pd.DataFrame({cid: self.task.image_scores(r) for cid, r in self.records.items()}).T


def reference_config(run_dir: Path, res: RunResults) -> dict[str, str]:
    """The model card's reference config: the row the plan marked (always evaluated).

    A run dir from before the reference was always planned falls back to the card's
    reference, a factor the run held at one value keeping that value.
    """
    ref_id = res.reference_id()
    if ref_id is not None:
        return res.factors_of(ref_id)
    ref = dict(run_choices(run_dir))
    card = model_settings(run_dir).get("card") or {}
    ref.update({k: str(v) for k, v in (card.get("reference") or {}).items()})
    for f in res.factors:
        values = res.summary[f].unique()
        if len(values) == 1 or f not in ref:
            ref[f] = str(values[0])
    return {f: ref[f] for f in res.factors}
