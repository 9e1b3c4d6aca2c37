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
from evalharness.rundir import records as run_records
from evalharness.rundir.read import (
    dataset_settings,
    model_settings,
    run_choices,
    run_settings,
    run_user_dirs,
)
from evalharness.rundir.summary import read_summary, summary_factors
from evalharness.tasks.base import Task, get_task

# What analysis reads from a run dir: verified against records.json before it is used.
REQUIRED = ("summary.csv", "predictions.parquet", "run_config.yaml")
RECORDED = ("plan.json", "configs.csv", "choices.json", "factors.json", "calibration.csv",
            "errors.csv", "variants.json")  # fmt: skip


def verify_run(run_dir: Path) -> None:
    """Refuse (EditedRunError) a run dir whose files are not what the run wrote."""
    run_records.verify(run_dir, REQUIRED, optional=RECORDED)


def task_of_run(run_dir: Path) -> Task:
    """The run's task, bound to its model's post-processing settings (from run_config.yaml:
    no model file is needed to analyse a run)."""
    model = model_settings(run_dir)
    post = dict(model.get("postprocess") or {})
    stub = SimpleNamespace(name=str(model["name"]), postprocess=tuple(sorted(post.items())))
    return get_task(str(model.get("task", "classification")), stub)


def run_margin(run_dir: Path) -> float | None:
    """The run's findings.margin setting (None: the metric's default)."""
    from evalharness.rundir.read import run_config

    value = (run_config(run_dir).get("findings") or {}).get("margin")
    return None if value is None else float(value)


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
    # each config's prediction rows (sample order) and which images were error rows: a gap
    # splits into the images that failed in one config only and the images both scored
    rows: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    failed: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    dataset: Any = field(default=None, repr=False)  # what task.records needs (COCO index)

    @classmethod
    def load(cls, run_dir: Path, dataset=None) -> RunResults:
        """The run's tables, after checking every file read against records.json (an edited
        dir is refused in one line unless read inside run_records.trusting_edits)."""
        run_dir = Path(run_dir)
        for name in REQUIRED:
            if not (run_dir / name).exists():
                raise FileNotFoundError(f"{run_dir / name} not found: is this a finished run dir?")
        verify_run(run_dir)
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
        records, ids, labels, by_config, failed = {}, None, None, {}, {}
        for cid, rows in preds.groupby("config_id", sort=False):
            rows = rows.reset_index(drop=True)
            records[cid] = task.records(rows, dataset)
            by_config[cid] = rows
            failed[cid] = rows.error_stage.notna().to_numpy() if "error_stage" in rows else None
            if ids is None:
                ids = rows.sample_id.astype(str).tolist()
                labels = rows.label.to_numpy() if "label" in rows else np.full(len(rows), -1)
        summary = summary[summary.config_id.isin(records)].reset_index(drop=True)
        labels = labels if labels is not None else np.array([])
        return cls(
            summary, task, records, ids or [], labels, rows=by_config, failed=failed,
            dataset=dataset,
        )  # fmt: skip

    def only(self, config_id: str) -> RunResults:
        """These results narrowed to one config (on-demand runs carry the reference too)."""
        return RunResults(
            self.summary[self.summary.config_id == config_id].reset_index(drop=True),
            self.task,
            {config_id: self.records[config_id]},
            self.sample_ids,
            self.labels,
            canonical=self.canonical,
            rows={k: v for k, v in self.rows.items() if k == config_id},
            failed={k: v for k, v in self.failed.items() if k == config_id},
            dataset=self.dataset,
        )

    def failed_images(self, config_id: str) -> np.ndarray:
        """Per image: was it an error row in this config (unreadable file, ...)?"""
        mask = self.failed.get(config_id)
        return mask if mask is not None else np.zeros(len(self.sample_ids), bool)

    def error_flips(self, a_id: str, b_id: str) -> np.ndarray:
        """Images that failed in one of the two configs and not in the other."""
        return self.failed_images(a_id) != self.failed_images(b_id)

    def changed_images(self, a_id: str, b_id: str) -> np.ndarray:
        """Per image: does B's stored record differ from A's in any task column (a score, a
        box, a label)? Only those images can move a paired difference."""
        if a_id in self.rows and b_id in self.rows:
            cols = [n for n, _ in self.task.task_schema if n in self.rows[a_id]]
            a, b = self.rows[a_id][cols], self.rows[b_id][cols]
            same = np.ones(len(a), bool)
            for c in cols:
                same &= np.array([_equal(x, y) for x, y in zip(a[c], b[c], strict=True)])
            return ~same
        differ = self.scores(a_id) != self.scores(b_id)
        return differ | ~self.task.agree(self.records[a_id], self.records[b_id])

    def hybrid_values(self, a_id: str, b_id: str, idx: np.ndarray) -> np.ndarray | None:
        """[point, resamples] of B with A's outcome on the images that failed in only one
        of them: metric(B) - hybrid is the part of the gap those error rows make, hybrid -
        metric(A) the part of the images both scored. None when the rows are not kept."""
        if a_id not in self.rows or b_id not in self.rows:
            return None
        mask = self.error_flips(a_id, b_id)
        if not mask.any():
            return self.values(b_id, idx)
        a_rows, b_rows = self.rows[a_id], self.rows[b_id]
        rows = pd.concat([b_rows[~mask], a_rows[mask]]).sort_index(kind="stable")
        rec = self.task.records(rows.reset_index(drop=True), self.dataset)
        return np.concatenate([[self.task.point(rec)], self.task.value(rec, idx)])

    def merged(self, other: RunResults) -> RunResults:
        """Add configs evaluated elsewhere on the same samples (e.g. on demand)."""
        if other.sample_ids != self.sample_ids:
            raise ValueError("cannot merge runs over different samples")
        new = ~other.summary.config_id.isin(self.summary.config_id)
        summary = pd.concat([self.summary, other.summary[new]], ignore_index=True)
        records = {**other.records, **self.records}
        return RunResults(
            summary, self.task, records, self.sample_ids, self.labels,
            canonical=self.canonical, rows={**other.rows, **self.rows},
            failed={**other.failed, **self.failed}, dataset=self.dataset,
        )  # fmt: skip

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


def _plain(x):
    """A stored cell as nested tuples of Python scalars (NaN as None): comparable with ==."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, list | tuple):
        return tuple(_plain(v) for v in x)
    if isinstance(x, float) and x != x:
        return None
    return x


def _equal(x, y) -> bool:
    """Two stored cells (scalars, lists, arrays of arrays, None) hold the same value."""
    return _plain(x) == _plain(y)
