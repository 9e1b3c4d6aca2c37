"""Every image whose outcome flips between two configs, in a table's words (flips.csv).

pairs.csv says how many images a config makes worse or better than A and joins their ids
with ';'. Here each such image is one row: its sample id, its ground truth, what A and B
predicted and how sure they were (the task's own words: `Task.describe`), each config's
per-image score (top-1 correct; the image's F1 or F) and how far the image moved (the true
class's logit for classification, else the per-image score). The factors of both configs are
columns (`a_resize`, `b_resize`, ...), so the table reads without a config hash.

The two configs may come from two runs (`report RUN_A --other RUN_B`): they are paired on
the images both runs scored (by sample id), with the interval of the difference from one
bootstrap index matrix over those images, as every other paired interval in the tool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from evalharness.analysis.results import RunResults
from evalharness.stats.paired import bootstrap_indices, mcnemar_exact, percentile_ci

ONDEMAND = ("explain", "ondemand")  # where RunDirConfigs evaluates configs a run lacks


@dataclass(frozen=True)
class ConfigRef:
    """One side of a pair: the run it is read from and the config in it."""

    run_dir: Path
    results: RunResults
    config_id: str

    @property
    def factors(self) -> dict[str, str]:
        return self.results.factors_of(self.config_id)


@dataclass
class PairComparison:
    """B against A on the images both scored: the metric's paired difference and the flips."""

    metric_a: float
    metric_b: float
    delta: float
    lo: float
    hi: float
    worse: int
    better: int
    p_mcnemar: float
    n: int  # images both sides scored
    flipped: list[str] = field(default_factory=list)  # sample ids, in A's order


def prediction_rows(run_dir: Path, config_ids: list[str], sample_ids=None) -> pd.DataFrame:
    """The prediction rows of these configs: from predictions.parquet, then from the
    configs evaluated on demand into the run dir (explain/ondemand/*/)."""
    run_dir = Path(run_dir)
    files = [run_dir / "predictions.parquet"]
    files += sorted(run_dir.joinpath(*ONDEMAND).glob("*/predictions.parquet"))
    wanted, frames = set(config_ids), []
    for f in files:
        if not wanted or not f.exists():
            continue
        t = pq.read_table(f, filters=[("config_id", "in", sorted(wanted))]).to_pandas()
        if sample_ids is not None:
            t = t[t.sample_id.isin(set(sample_ids))]
        if len(t):
            frames.append(t)
            wanted -= set(t.config_id)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def positions(a: RunResults, b: RunResults) -> tuple[np.ndarray, np.ndarray]:
    """Where each image both runs scored sits in A's and in B's records (A's order)."""
    at_b = {s: i for i, s in enumerate(b.sample_ids)}
    pa = [i for i, s in enumerate(a.sample_ids) if s in at_b]
    if not pa:
        raise ValueError("the two runs share no image: nothing to pair")
    pb = [at_b[a.sample_ids[i]] for i in pa]
    return np.asarray(pa), np.asarray(pb)


def compare_sides(a: ConfigRef, b: ConfigRef, n_boot: int = 1000) -> PairComparison:
    """metric(B) - metric(A) with its paired bootstrap interval, and the flipped images,
    over the images both sides scored (all of them when both come from one run)."""
    pa, pb = positions(a.results, b.results)
    task = a.results.task
    rec_a, rec_b = a.results.records[a.config_id], b.results.records[b.config_id]
    idx = bootstrap_indices(len(pa), n_boot)
    ma = float(task.value(rec_a, pa[None, :])[0])
    mb = float(task.value(rec_b, pb[None, :])[0])
    lo, hi = percentile_ci(task.value(rec_b, pb[idx]) - task.value(rec_a, pa[idx]))
    sa = task.image_scores(rec_a)[pa]
    sb = task.image_scores(rec_b)[pb]
    worse, better = int((sb < sa).sum()), int((sb > sa).sum())
    ids = [a.results.sample_ids[i] for i in pa]
    flipped = [s for s, x, y in zip(ids, sa, sb, strict=True) if x != y]
    return PairComparison(ma, mb, mb - ma, lo, hi, worse, better, mcnemar_exact(worse, better),
                          len(pa), flipped)  # fmt: skip


def _factor_columns(prefix: str, factors: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}_{f}": v for f, v in factors.items()}


def rows_by_config(rows: pd.DataFrame | None) -> dict[str, dict[str, dict]]:
    """Prediction rows as plain dicts, config_id -> sample_id -> row: read once, looked up
    per pair (a DataFrame row per lookup costs a Series each; 50k of them took 15 s)."""
    out: dict[str, dict[str, dict]] = {}
    if rows is None or rows.empty:
        return out
    for r in rows.to_dict("records"):
        out.setdefault(str(r["config_id"]), {})[str(r["sample_id"])] = r
    return out


def pair_flips(a: ConfigRef, b: ConfigRef, classes=(), rows_a=None, rows_b=None) -> pd.DataFrame:
    """One row per image whose per-image score differs between A and B (A's image order).

    rows_a / rows_b: each config's prediction rows by sample id, when the caller has read
    them already; else they are read from the run dirs."""
    task = a.results.task
    pa, pb = positions(a.results, b.results)
    sa = task.image_scores(a.results.records[a.config_id])[pa]
    sb = task.image_scores(b.results.records[b.config_id])[pb]
    changed = np.flatnonzero(sa != sb)
    ids = [a.results.sample_ids[pa[k]] for k in changed]
    if rows_a is None:
        rows_a = rows_by_config(prediction_rows(a.run_dir, [a.config_id], ids))
        rows_a = rows_a.get(a.config_id, {})
    if rows_b is None:
        rows_b = rows_by_config(prediction_rows(b.run_dir, [b.config_id], ids))
        rows_b = rows_b.get(b.config_id, {})
    worse_name, better_name = task.flip_names
    head = {"a_config_id": a.config_id, "b_config_id": b.config_id,
            **_factor_columns("a", a.factors), **_factor_columns("b", b.factors)}  # fmt: skip
    out = []
    for k, sid in zip(changed, ids, strict=True):
        ra, rb = rows_a.get(sid), rows_b.get(sid)
        da = task.describe(ra, classes) if ra is not None else None
        db = task.describe(rb, classes) if rb is not None else None
        if da is not None and db is not None and da.level is not None and db.level is not None:
            moved = abs(db.level - da.level)
        else:
            moved = abs(float(sb[k]) - float(sa[k]))
        either = da or db
        out.append({
            **head,
            "sample_id": sid,
            "label": either.truth if either is not None else "",
            "direction": worse_name if sb[k] < sa[k] else better_name,
            "pred_a": da.pred if da else "",
            "score_a": da.score if da else np.nan,
            "pred_b": db.pred if db else "",
            "score_b": db.score if db else np.nan,
            "outcome_a": float(sa[k]),
            "outcome_b": float(sb[k]),
            "moved": moved,
        })  # fmt: skip
    return pd.DataFrame(out)


def flips_against(run_dir: Path, res: RunResults, a_id: str, classes=()) -> pd.DataFrame:
    """Every config of the run against A (the pairs of pairs.csv), one row per flipped
    image and pair: flips.csv."""
    a = ConfigRef(Path(run_dir), res, a_id)
    others = [str(c) for c in res.summary.config_id if c != a_id]
    scores = {c: res.scores(c) for c in [a_id, *others]}
    flipped = {c: scores[a_id] != scores[c] for c in others}
    ids = sorted({res.sample_ids[i] for m in flipped.values() for i in np.flatnonzero(m)})
    rows = rows_by_config(prediction_rows(run_dir, [a_id, *others], ids))
    frames = [pair_flips(a, ConfigRef(Path(run_dir), res, c), classes, rows.get(a_id, {}),
                         rows.get(c, {}))
              for c in others if flipped[c].any()]  # fmt: skip
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
