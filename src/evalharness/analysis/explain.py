"""Which factor explains a gap in a run, and by how much: the library behind `explain`.

`explain()` returns an `Explanation` (the CLI prints it; `Results.explain()` returns the
very same object) and writes its tables under RUN_DIR/explain/ (the metric is the task's:
top-1, mAP, hmean):
- effects.csv        marginal metric per factor level with paired bootstrap CIs
- variance.csv       share of between-config variance each factor explains
- interactions.csv   two-way tables of the mean metric (long form)
- pairs.csv          every config against A: delta with CI, images worse/better, exact
                     McNemar (sign test) p, Holm-adjusted
- per_class.csv      classification: top-1 per class and config
- attribution.csv    with --b: the exact Shapley split of metric(B) - metric(A), with CIs
- target.csv         with --target: configs whose 95% interval contains the target
A defaults to the model card's reference config; B's unnamed factors take A's values.
Coalition configs the sweep lacks are evaluated on demand (into explain/ondemand/); a
coalition that cannot run at all (int8_nncf exists only on OpenVINO) makes its factors one
joint term, and the verdict says why.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalharness.analysis.attribution import (
    all_coalition_configs,
    attribute_values,
    coalition_config,
    differing_factors,
)
from evalharness.analysis.contrast import contrast
from evalharness.analysis.effects import (
    effects_table,
    factor_effects,
    full_product,
    interaction_table,
    marginal_means,
    variance_shares,
    with_single_changes,
)
from evalharness.analysis.ondemand import ConfigSource
from evalharness.analysis.reproduce import configs_matching
from evalharness.analysis.results import RunResults, reference_config, run_dataset, run_margin
from evalharness.rundir.atomic import write_atomic_csv
from evalharness.stats.paired import bootstrap_indices, check_resamples, holm
from evalharness.stats.verdict import margin_for

MAX_ON_DEMAND = 8  # single changes or Shapley coalitions evaluated on demand, at most


class ExplainError(ValueError):
    pass


@dataclass
class Explanation:
    """What `evalharness explain` prints, as data: its tables, A, B's gap and the verdict."""

    tables: dict[str, pd.DataFrame]
    a: dict[str, str]
    verdict: str | None = None
    gap: float | None = None  # metric(B) - metric(A), when B was given
    files: Path | None = field(default=None, repr=False)  # where the CSVs were written
    a_id: str | None = None
    results: Any = field(default=None, repr=False)  # the RunResults (on-demand configs in)
    target: float | None = None
    factor_effects: list = field(default_factory=list, repr=False)  # effects.FactorEffect
    margin: float | None = None  # the verdicts' margin, in the metric's units
    variance_note: str = ""  # why there are no variance shares ('' when there are)

    def factor_verdicts(self) -> dict[str, str]:
        """factor -> its verdict word (the findings block says the same)."""
        return {fe.factor: fe.word for fe in self.factor_effects}

    @property
    def attribution(self) -> pd.DataFrame | None:
        """Shapley terms (factor, a, b, shapley, lo, hi) and the residual row."""
        return self.tables.get("attribution")

    @property
    def effects(self) -> pd.DataFrame:
        return self.tables["effects"]

    @property
    def pairs(self) -> pd.DataFrame:
        return self.tables["pairs"]

    def _repr_markdown_(self) -> str:
        return self.verdict or "(no B given: see .effects and .pairs)"


def setting_keys_as_columns(given: dict[str, str], res: RunResults) -> dict[str, str]:
    """`resize.limit_side_len=960` (the sweep's key) names the column `limit_side_len`."""
    out = {}
    for k, v in given.items():
        column = k.split(".", 1)[1] if "." in k else k
        out[column if k not in res.factors and column in res.factors else k] = v
    return out


def check_factors(given: dict[str, str], res: RunResults) -> None:
    for k in given:
        if k in res.factors:
            continue
        if "." in k:  # group.setting: a real setting, only not one this run varies
            raise ExplainError(
                f"'{k}' is not swept in this run (its value is fixed); explain splits what a "
                f"run varies: sweep it (a sweep's factors, as conf/case/paddle_limit.yaml "
                f"lists {k}: [...]) or name only {', '.join(res.factors)}"
            )
        raise ExplainError(f"unknown factor '{k}'; valid: {', '.join(res.factors)}")


def pairs_table(res: RunResults, a_id: str, idx: np.ndarray, margin: float) -> pd.DataFrame:
    """Every config against A: the paired difference, its verdict interval (90/95%), the
    images worse/better, the sign test, the part error rows make, the flipped ids."""
    rows = []
    cache: dict[str, np.ndarray] = {}

    def values(cid: str) -> np.ndarray:
        if cid not in cache:
            cache[cid] = res.values(cid, idx)
        return cache[cid]

    worse, better = res.task.flip_names
    m = res.metric
    for cid in res.summary.config_id:
        if cid == a_id:
            continue
        c = contrast(res, a_id, cid, idx, margin, values)
        r, v = c.pair, c.verdict
        rows.append({"config_id": cid, **res.factors_of(cid), m: r.acc_b, "delta": r.delta,
                     "delta_lo": v.ci95[0], "delta_hi": v.ci95[1], "lo90": v.ci90[0],
                     "hi90": v.ci90[1], "verdict": v.word, "detectable": v.detectable,
                     worse: r.right_to_wrong, better: r.wrong_to_right,
                     "p_mcnemar": r.p_mcnemar,
                     "error_images": c.errors.images if c.errors else 0,
                     "errors_part": c.errors.errors if c.errors else 0.0,
                     "flipped_ids": ";".join(r.flipped)})  # fmt: skip
    table = pd.DataFrame(rows)
    if not table.empty:
        table.insert(table.columns.get_loc("p_mcnemar") + 1, "p_holm", holm(table.p_mcnemar))
    return table


def per_class_table(res: RunResults, classes: list[str] | None) -> pd.DataFrame:
    """Score per class and config, each row named by its factor values (not only its id)."""
    correct = res.correct
    table = correct.T.groupby(res.labels).mean().T * 100
    if classes:
        table.columns = [classes[i] if 0 <= i < len(classes) else str(i) for i in table.columns]
    table = table.rename_axis("config_id").reset_index()
    factors = pd.DataFrame([res.factors_of(c) for c in table.config_id], index=table.index)
    return pd.concat([table[["config_id"]], factors, table.drop(columns="config_id")], axis=1)


def interactions_long(res: RunResults) -> pd.DataFrame:
    frames = []
    for f1, f2 in itertools.combinations(res.varying_factors(), 2):
        t = interaction_table(res.summary, f1, f2, res.metric).stack().rename(res.metric)
        t = t.reset_index()
        t.columns = ["level1", "level2", res.metric]
        t.insert(0, "factor2", f2)
        t.insert(0, "factor1", f1)
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _label(config: dict[str, str], base: dict[str, str]) -> str:
    diff = {f: v for f, v in config.items() if base.get(f) != v}
    return "(" + " ".join(f"{f}={v}" for f, v in diff.items()) + ")" if diff else "(reference)"


def joint_groups(configs: ConfigSource, res: RunResults, a: dict, b: dict) -> dict[str, list[str]]:
    """Factors that must be attributed together because a coalition mixing them cannot run.

    For a coalition S that cannot run, the factor q (not in S) whose switch makes S + q
    runnable is merged with S's factors; repeated until every coalition of the players runs.
    If nothing resolves it, all differing factors form one term: never an invented value.
    """
    players = [[f] for f in differing_factors(a, b)]

    def config(group_set) -> dict[str, str]:
        return coalition_config(a, b, {f for g in group_set for f in g})

    def runnable(c: dict[str, str]) -> bool:
        return res.find(c) is not None or configs.problem(c) is None

    changed = True
    while changed and len(players) > 1:
        changed = False
        for r in range(1, len(players)):
            for s in itertools.combinations(range(len(players)), r):
                if runnable(config([players[i] for i in s])):
                    continue
                rest = [j for j in range(len(players)) if j not in s]
                q = next((j for j in rest if runnable(config([players[i] for i in (*s, j)]))), None)
                merge = [*s, q] if q is not None else list(range(len(players)))
                order = list(a)
                merged = sorted((f for i in merge for f in players[i]), key=order.index)
                players = [p for i, p in enumerate(players) if i not in merge] + [merged]
                changed = True
                break
            if changed:
                break
    return {"+".join(p): p for p in players if len(p) > 1}


def attribution(configs: ConfigSource, res: RunResults, a_cfg: dict, b_cfg: dict, idx):
    """The exact Shapley split of metric(B) - metric(A), coalitions the run lacks evaluated
    through `configs`; factors whose mixed coalitions cannot run are one joint term."""
    groups = joint_groups(configs, res, a_cfg, b_cfg)
    coalitions = [
        c
        for c in all_coalition_configs(a_cfg, b_cfg)
        if not any(
            len({c[f] == b_cfg[f] for f in fs}) > 1 for fs in groups.values()
        )  # a coalition that splits a joint group is never evaluated
    ]
    missing = [c for c in coalitions if res.find(c) is None]
    extra = configs.evaluate(missing)
    if extra is not None:
        res = res.merged(extra)

    def hybrid(c: dict, d: dict) -> np.ndarray | None:
        ci, di = res.find(c), res.find(d)
        return res.hybrid_values(ci, di, idx) if res.error_flips(ci, di).any() else None

    att = attribute_values(
        a_cfg, b_cfg, lambda c: res.values(res.find(c), idx), unit=res.task.unit, groups=groups,
        hybrid=hybrid,
    )  # fmt: skip
    if groups:
        why = {}
        for name, fs in groups.items():
            reasons = (
                configs.problem(coalition_config(a_cfg, b_cfg, set(part)))
                for r in range(1, len(fs))
                for part in itertools.combinations(fs, r)
            )
            reason = next((r for r in reasons if r), "a coalition splitting them cannot run")
            why[name] = f"{' and '.join(fs)} are one joint term ({reason})"
        att.joint = why
    return att, res


def explain(
    run_dir: Path,
    configs: ConfigSource,
    a: dict | None = None,
    b: dict | None = None,
    target: float | None = None,
    n_boot: int = 2000,
    margin: float | None = None,
    max_on_demand: int = MAX_ON_DEMAND,
    out_dir: Path | None = None,
) -> Explanation:
    """Effects, pairs and, with `b`, the Shapley split of metric(B) - metric(A).

    A is the model card's reference with `a`'s factors changed; B is A with `b`'s. Effects
    are contrasts against the reference (single changes, the missing ones evaluated on
    demand up to `max_on_demand`), judged at `margin` (findings.margin: the run's setting,
    else the metric's default). Configs the run lacks are evaluated through `configs`.
    Tables go to `out_dir` (default RUN_DIR/explain; elsewhere for a read-only run dir)."""
    run_dir = Path(run_dir)
    a = {k: str(v) for k, v in (a or {}).items()}
    b = {k: str(v) for k, v in (b or {}).items()}
    dataset = run_dataset(run_dir)
    res = RunResults.load(run_dir, dataset)
    a, b = setting_keys_as_columns(a, res), setting_keys_as_columns(b, res)
    check_factors({**a, **b}, res)
    out_dir = Path(out_dir) if out_dir else run_dir / "explain"
    out_dir.mkdir(parents=True, exist_ok=True)
    idx = bootstrap_indices(len(res.sample_ids), check_resamples(n_boot))
    ref = reference_config(run_dir, res)
    a_cfg = {**ref, **a}
    written: dict = {}
    m = res.metric
    mg = margin_for(m, margin if margin is not None else run_margin(run_dir))
    full, why = full_product(res.summary, res.varying_factors())
    tables = {"marginal_means": marginal_means(res, idx), "interactions": interactions_long(res)}
    tables["variance"] = (
        variance_shares(res.summary, res.varying_factors(), m)
        if full
        else pd.DataFrame({"factor": [], "share": [], "note": []})
    )
    extended = with_single_changes(res, ref, configs, max_on_demand)
    evaluated = set(extended.records) - set(res.records)
    effects = factor_effects(extended, ref, idx, mg, None, evaluated, configs.problem)
    tables["effects"] = effects_table(effects, m)
    res = extended
    if res.task.labelled:
        tables["per_class"] = per_class_table(res, dataset.classes if dataset else None)

    if b:
        b_cfg = {**a_cfg, **b}
        att, res = attribution(configs, res, a_cfg, b_cfg, idx)
        tables["attribution"] = pd.DataFrame(
            [dict(factor=f, a=a_cfg.get(f, "+"), b=b_cfg.get(f, "+"), shapley=p, lo=lo, hi=hi)
             for f, (p, lo, hi) in att.ranked()]
            + [dict(factor="residual", shapley=att.residual)]
        )  # fmt: skip
        written["verdict"] = att.verdict(
            f"A {_label(a_cfg, ref)}", f"B {_label(b_cfg, ref)}", res.task.number_format
        )
        written["gap"] = att.gap
    a_id = res.find(a_cfg)
    if a_id is None:
        res = res.merged(configs.evaluate([a_cfg]))
        a_id = res.find(a_cfg)
    tables["pairs"] = pairs_table(res, a_id, idx, mg)
    if target is not None:
        tables["target"] = configs_matching(res.summary, target, res.factors, m)
    for name, t in tables.items():  # renamed into place: a link there is replaced, not followed
        write_atomic_csv(out_dir / f"{name}.csv", t)
    out = Explanation(
        tables, a_cfg, written.get("verdict"), written.get("gap"), out_dir, a_id, res, target
    )
    out.factor_effects, out.margin, out.variance_note = effects, mg, why
    return out
