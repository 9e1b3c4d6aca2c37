"""`evalharness explain RUN_DIR`: which factor explains a gap, and by how much.

    evalharness explain results/examples/deployment_gap \
        --b decoder=opencv resize=cv2_linear colour=bgr --target 77.28

Prints and writes, under RUN_DIR/explain/ (the metric is the task's: top-1, mAP, hmean):
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

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.analysis.attribution import (
    all_coalition_configs,
    attribute_values,
    coalition_config,
    differing_factors,
)
from evalharness.analysis.effects import interaction_table, main_effects, variance_shares
from evalharness.analysis.paired import bootstrap_indices, compare_values, holm
from evalharness.analysis.reproduce import configs_matching
from evalharness.analysis.results import RunResults
from evalharness.cli.assignments import AssignmentError, parse_assignments
from evalharness.engine.plan import PlanError
from evalharness.rundir import evaluate_on_demand, reference_config, run_dataset, spec_for


class ExplainError(ValueError):
    pass


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


def pairs_table(res: RunResults, a_id: str, idx: np.ndarray) -> pd.DataFrame:
    rows = []
    va, sa = res.values(a_id, idx), res.scores(a_id)
    worse, better = res.task.flip_names
    m = res.metric
    for cid in res.summary.config_id:
        if cid == a_id:
            continue
        r = compare_values(va, res.values(cid, idx), sa, res.scores(cid), res.sample_ids)
        rows.append({"config_id": cid, **res.factors_of(cid), m: r.acc_b, "delta": r.delta,
                     "delta_lo": r.delta_lo, "delta_hi": r.delta_hi, worse: r.right_to_wrong,
                     better: r.wrong_to_right, "p_mcnemar": r.p_mcnemar,
                     "flipped_ids": ";".join(r.flipped)})  # fmt: skip
    table = pd.DataFrame(rows)
    if not table.empty:
        table.insert(table.columns.get_loc("p_mcnemar") + 1, "p_holm", holm(table.p_mcnemar))
    return table


def per_class_table(res: RunResults, classes: list[str] | None) -> pd.DataFrame:
    correct = res.correct
    table = correct.T.groupby(res.labels).mean().T * 100
    if classes:
        table.columns = [classes[i] if 0 <= i < len(classes) else str(i) for i in table.columns]
    return table.rename_axis("config_id").reset_index()


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


def plan_problem(run_dir: Path, config: dict[str, str]) -> str | None:
    """Why a config cannot run at all (from the declarations), or None when it can."""
    try:
        spec_for(run_dir, config)
    except PlanError as e:
        return str(e).split(": ", 1)[-1]
    return None


def joint_groups(run_dir: Path, res: RunResults, a: dict, b: dict) -> dict[str, list[str]]:
    """Factors that must be attributed together because a coalition mixing them cannot run.

    For a coalition S that cannot run, the factor q (not in S) whose switch makes S + q
    runnable is merged with S's factors; repeated until every coalition of the players runs.
    If nothing resolves it, all differing factors form one term: never an invented value.
    """
    players = [[f] for f in differing_factors(a, b)]

    def config(group_set) -> dict[str, str]:
        return coalition_config(a, b, {f for g in group_set for f in g})

    def runnable(c: dict[str, str]) -> bool:
        return res.find(c) is not None or plan_problem(run_dir, c) is None

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


def attribution(run_dir: Path, res: RunResults, a_cfg: dict, b_cfg: dict, idx: np.ndarray):
    groups = joint_groups(run_dir, res, a_cfg, b_cfg)
    coalitions = [
        c
        for c in all_coalition_configs(a_cfg, b_cfg)
        if not any(
            len({c[f] == b_cfg[f] for f in fs}) > 1 for fs in groups.values()
        )  # a coalition that splits a joint group is never evaluated
    ]
    missing = [c for c in coalitions if res.find(c) is None]
    extra = evaluate_on_demand(run_dir, missing)
    if extra is not None:
        res = res.merged(extra)
    att = attribute_values(
        a_cfg, b_cfg, lambda c: res.values(res.find(c), idx), unit=res.task.unit, groups=groups
    )
    if groups:
        why = {}
        for name, fs in groups.items():
            reasons = (
                plan_problem(run_dir, coalition_config(a_cfg, b_cfg, set(part)))
                for r in range(1, len(fs))
                for part in itertools.combinations(fs, r)
            )
            reason = next((r for r in reasons if r), "a coalition splitting them cannot run")
            why[name] = f"{' and '.join(fs)} are one joint term ({reason})"
        att.joint = why
    return att, res


def explain(run_dir: Path, a: dict, b: dict, target: float | None, n_boot: int) -> dict:
    run_dir = Path(run_dir)
    dataset = run_dataset(run_dir)
    res = RunResults.load(run_dir, dataset)
    a, b = setting_keys_as_columns(a, res), setting_keys_as_columns(b, res)
    check_factors({**a, **b}, res)
    out_dir = run_dir / "explain"
    out_dir.mkdir(exist_ok=True)
    idx = bootstrap_indices(len(res.sample_ids), n_boot)
    ref = reference_config(run_dir, res)
    a_cfg = {**ref, **a}
    written: dict = {}
    m = res.metric

    tables = {
        "effects": main_effects(res, idx),
        "variance": variance_shares(res.summary, res.varying_factors(), m),
        "interactions": interactions_long(res),
    }
    if res.task.name == "classification":
        tables["per_class"] = per_class_table(res, dataset.classes if dataset else None)

    if b:
        b_cfg = {**a_cfg, **b}
        att, res = attribution(run_dir, res, a_cfg, b_cfg, idx)
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
        res = res.merged(evaluate_on_demand(run_dir, [a_cfg]))
        a_id = res.find(a_cfg)
    tables["pairs"] = pairs_table(res, a_id, idx)
    if target is not None:
        tables["target"] = configs_matching(res.summary, target, res.factors, m)
    for name, t in tables.items():
        t.to_csv(out_dir / f"{name}.csv", index=False)
    written["tables"] = tables
    written["a"] = a_cfg
    written["a_id"] = a_id
    written["results"] = res
    return written


def _fmt(df: pd.DataFrame, cols: list[str], n: int = 20) -> str:
    cols = [c for c in cols if c in df.columns]
    return df[cols].head(n).to_string(index=False, float_format=lambda v: f"{v:.3g}")


def print_explain(out: dict, target: float | None, run_dir: Path) -> None:
    t, res = out["tables"], out["results"]
    m = res.metric
    print(f"Main effects (mean {m} over the configs at each level, 95% CI):")
    print(_fmt(t["effects"], ["factor", "level", "n_configs", m, f"{m}_lo", f"{m}_hi"], 60))
    print("\nShare of between-config variance:")
    print(_fmt(t["variance"], ["factor", "share"]))
    if not t["pairs"].empty:
        print(f"\nAgainst A ({' '.join(f'{k}={v}' for k, v in out['a'].items())}), largest drops:")
        p = t["pairs"].sort_values("delta", kind="stable")
        worse, better = res.task.flip_names
        cols = ["delta", "delta_lo", "delta_hi", worse, better, "p_holm"]
        varying = [f for f in res.factors if f in p and p[f].nunique() > 1]
        print(_fmt(p, [*varying, *cols], 10))
    if "attribution" in t:
        print(f"\nShapley attribution of the gap ({res.task.unit}):")
        print(_fmt(t["attribution"], ["factor", "a", "b", "shapley", "lo", "hi"]))
        print("\n" + out["verdict"])
    if "target" in t:
        print(f"\nConfigs whose 95% interval contains {target}:")
        print(_fmt(t["target"], list(t["target"].columns), 10) if len(t["target"]) else "  none")
    print(f"\ntables written to {run_dir / 'explain'}")


EPILOG = """\
examples:
  evalharness explain results/gap --b resize=cv2_linear colour=bgr meanstd=half
  evalharness explain results/gap --b resize=cv2_linear,colour=bgr --target 77.28
  evalharness explain results/gap --a backend=onnxruntime --b backend=openvino

A is the model card's reference config unless --a names factors; B is A with the factors
--b names. Tables go to RUN_DIR/explain/ (effects, variance, interactions, pairs,
per_class, attribution, target).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Explain metric gaps in a finished run dir.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("run_dir", type=Path)
    ap.add_argument(
        "--a", nargs="*", help="config A as factor=value (default: model card reference)"
    )
    ap.add_argument("--b", nargs="*", help="config B as factor=value; unnamed factors as in A")
    ap.add_argument("--target", type=float, help="a reported figure (the task's metric)")
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    args = ap.parse_args(argv)
    try:
        out = explain(args.run_dir, parse_assignments(args.a), parse_assignments(args.b),
                      args.target, args.bootstrap)  # fmt: skip
    except (ExplainError, AssignmentError, FileNotFoundError, PlanError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_explain(out, args.target, args.run_dir)
    return 0


if __name__ == "__main__":  # python -m evalharness.explain: one line for a user's mistake
    from evalharness.cli import run_command

    sys.exit(run_command("explain", sys.argv[1:]))
