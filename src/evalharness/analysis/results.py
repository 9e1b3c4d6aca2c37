"""A finished run dir as the analysis sees it: summary rows and a correctness matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.engine.plan import FACTORS


@dataclass
class RunResults:
    summary: pd.DataFrame  # one row per config
    correct: pd.DataFrame  # config_id x sample_index, bool (top-1 correct)
    sample_ids: list[str]
    labels: np.ndarray

    @classmethod
    def load(cls, run_dir: Path) -> RunResults:
        run_dir = Path(run_dir)
        for name in ("summary.csv", "predictions.parquet"):
            if not (run_dir / name).exists():
                raise FileNotFoundError(f"{run_dir / name} not found: is this a finished run dir?")
        summary = pd.read_csv(run_dir / "summary.csv", dtype={f: str for f in FACTORS})
        preds = pd.read_parquet(
            run_dir / "predictions.parquet",
            columns=["config_id", "sample_index", "sample_id", "label", "correct1"],
        )
        return cls.from_frames(summary, preds)

    @classmethod
    def from_frames(cls, summary: pd.DataFrame, preds: pd.DataFrame) -> RunResults:
        correct = preds.pivot(index="config_id", columns="sample_index", values="correct1")
        first = preds.drop_duplicates("sample_index").set_index("sample_index").loc[correct.columns]
        return cls(
            summary,
            correct.astype(bool),
            first.sample_id.astype(str).tolist(),
            first.label.to_numpy(),
        )

    def merged(self, other: RunResults) -> RunResults:
        """Add configs evaluated elsewhere on the same samples (e.g. on demand)."""
        if list(other.correct.columns) != list(self.correct.columns):
            raise ValueError("cannot merge runs over different samples")
        new = ~other.summary.config_id.isin(self.summary.config_id)
        summary = pd.concat([self.summary, other.summary[new]], ignore_index=True)
        correct = pd.concat(
            [self.correct, other.correct.loc[~other.correct.index.isin(self.correct.index)]]
        )
        return RunResults(summary, correct, self.sample_ids, self.labels)

    @property
    def factors(self) -> list[str]:
        return [f for f in FACTORS if f in self.summary.columns]

    def varying_factors(self) -> list[str]:
        return [f for f in self.factors if self.summary[f].nunique() > 1]

    def find(self, config: dict[str, str]) -> str | None:
        """config_id of the row matching every factor in `config`, if the run has one."""
        mask = np.ones(len(self.summary), bool)
        for f, v in config.items():
            mask &= (self.summary[f] == v).to_numpy()
        ids = self.summary.config_id[mask]
        return None if ids.empty else str(ids.iloc[0])

    def factors_of(self, config_id: str) -> dict[str, str]:
        row = self.summary.set_index("config_id").loc[config_id]
        return {f: str(row[f]) for f in self.factors}

    def vector(self, config_id: str) -> np.ndarray:
        return self.correct.loc[config_id].to_numpy(dtype=bool)
