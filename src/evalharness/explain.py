"""`python -m evalharness.explain RUN_DIR`: which factor explains a gap, and by how much.

    python -m evalharness.explain results/examples/deployment_gap \
        --b decoder=opencv resize=cv2_linear colour=bgr --target 77.28

Prints and writes, under RUN_DIR/explain/:
- effects.csv        marginal top-1 per factor level with paired bootstrap CIs
- variance.csv       share of between-config variance each factor explains
- interactions.csv   two-way tables of mean top-1 (long form)
- pairs.csv          every config against A: delta with CI, flips, exact McNemar, Holm-adjusted
- per_class.csv      top-1 per class and config
- attribution.csv    with --b: the exact Shapley split of acc(B) - acc(A), with CIs
- target.csv         with --target: configs whose 95% interval contains the target
A defaults to the model card's reference pipeline; B's unnamed factors take A's values.
Coalition configs the sweep lacks are evaluated on demand (into explain/ondemand/).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.analysis.attribution import all_coalition_configs, attribute
from evalharness.analysis.effects import interaction_table, main_effects, variance_shares
from evalharness.analysis.paired import bootstrap_indices, compare_pair, holm
from evalharness.analysis.reproduce import configs_matching
from evalharness.analysis.results import RunResults
from evalharness.rundir import evaluate_on_demand, reference_config, run_dataset
from evalharness.engine.plan import FACTORS


class ExplainError(ValueError):
    pass


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        for part in item.split(","):
            if not part:
                continue
            if "=" not in part:
                raise ExplainError(f"expected factor=value, got '{part}'")
            k, v = part.split("=", 1)
            if k not in FACTORS:
                raise ExplainError(f"unknown factor '{k}'; valid: {', '.join(FACTORS)}")
            out[k] = v
    return out


def pairs_table(res: RunResults, a_id: str, idx: np.ndarray) -> pd.DataFrame:
    rows = []
    a = res.vector(a_id)
    for cid in res.summary.config_id:
        if cid == a_id:
            continue
        r = compare_pair(a, res.vector(cid), res.sample_ids, idx)
        rows.append(dict(config_id=cid, **res.factors_of(cid), top1=r.acc_b, delta=r.delta,
                         delta_lo=r.delta_lo, delta_hi=r.delta_hi, right_to_wrong=r.right_to_wrong,
                         wrong_to_right=r.wrong_to_right, p_mcnemar=r.p_mcnemar,
                         flipped_ids=";".join(r.flipped)))  # fmt: skip
    table = pd.DataFrame(rows)
    if not table.empty:
        table.insert(table.columns.get_loc("p_mcnemar") + 1, "p_holm", holm(table.p_mcnemar))
    return table


def per_class_table(res: RunResults, classes: list[str] | None) -> pd.DataFrame:
    labels = pd.Series(res.labels, index=res.correct.columns)
    table = res.correct.T.groupby(labels.to_numpy()).mean().T * 100
    if classes:
        table.columns = [classes[i] if 0 <= i < len(classes) else str(i) for i in table.columns]
    return table.reset_index()


def interactions_long(res: RunResults) -> pd.DataFrame:
    frames = []
    for f1, f2 in itertools.combinations(res.varying_factors(), 2):
        t = interaction_table(res.summary, f1, f2).stack().rename("top1").reset_index()
        t.columns = ["level1", "level2", "top1"]
        t.insert(0, "factor2", f2)
        t.insert(0, "factor1", f1)
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _label(config: dict[str, str], base: dict[str, str]) -> str:
    diff = {f: v for f, v in config.items() if base.get(f) != v}
    return "(" + " ".join(f"{f}={v}" for f, v in diff.items()) + ")" if diff else "(reference)"


def explain(run_dir: Path, a: dict, b: dict, target: float | None, n_boot: int) -> dict:
    run_dir = Path(run_dir)
    res = RunResults.load(run_dir)
    out_dir = run_dir / "explain"
    out_dir.mkdir(exist_ok=True)
    idx = bootstrap_indices(len(res.sample_ids), n_boot)
    ref = reference_config(run_dir, res)
    a_cfg = {**ref, **a}
    written = {}

    effects = main_effects(res, idx)
    variance = variance_shares(res.summary, res.varying_factors())
    tables = {"effects": effects, "variance": variance, "interactions": interactions_long(res)}
    dataset = run_dataset(run_dir)
    tables["per_class"] = per_class_table(res, dataset.classes if dataset else None)

    if b:
        b_cfg = {**a_cfg, **b}
        missing = [c for c in all_coalition_configs(a_cfg, b_cfg) if res.find(c) is None]
        extra = evaluate_on_demand(run_dir, missing)
        if extra is not None:
            res = res.merged(extra)
        att = attribute(a_cfg, b_cfg, lambda c: res.vector(res.find(c)), idx)
        tables["attribution"] = pd.DataFrame(
            [dict(factor=f, a=a_cfg[f], b=b_cfg[f], shapley=p, lo=lo, hi=hi)
             for f, (p, lo, hi) in att.ranked()]
            + [dict(factor="residual", shapley=att.residual)]
        )  # fmt: skip
        written["verdict"] = att.verdict(f"A {_label(a_cfg, ref)}", f"B {_label(b_cfg, ref)}")
        written["gap"] = att.gap
    a_id = res.find(a_cfg)
    if a_id is None:
        extra = evaluate_on_demand(run_dir, [a_cfg])
        res = res.merged(extra)
        a_id = res.find(a_cfg)
    tables["pairs"] = pairs_table(res, a_id, idx)
    if target is not None:
        tables["target"] = configs_matching(res.summary, target, res.factors)
    for name, t in tables.items():
        t.to_csv(out_dir / f"{name}.csv", index=False)
    written["tables"] = tables
    written["a"] = a_cfg
    written["a_id"] = a_id
    return written


def _fmt(df: pd.DataFrame, cols: list[str], n: int = 20) -> str:
    return df[cols].head(n).to_string(index=False, float_format=lambda v: f"{v:.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Explain accuracy gaps in a finished run dir.")
    ap.add_argument("run_dir", type=Path)
    ap.add_argument(
        "--a", nargs="*", help="config A as factor=value (default: model card reference)"
    )
    ap.add_argument("--b", nargs="*", help="config B as factor=value; unnamed factors as in A")
    ap.add_argument("--target", type=float, help="a reported top-1 (percent) to reproduce")
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    args = ap.parse_args(argv)
    try:
        out = explain(args.run_dir, parse_assignments(args.a), parse_assignments(args.b),
                      args.target, args.bootstrap)  # fmt: skip
    except (ExplainError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t = out["tables"]
    print("Main effects (mean top-1 over the configs at each level, 95% CI):")
    print(_fmt(t["effects"], ["factor", "level", "n_configs", "top1", "top1_lo", "top1_hi"], 60))
    print("\nShare of between-config variance:")
    print(_fmt(t["variance"], ["factor", "share"]))
    if not t["pairs"].empty:
        print(f"\nAgainst A ({' '.join(f'{k}={v}' for k, v in out['a'].items())}), largest drops:")
        p = t["pairs"].sort_values("delta", kind="stable")
        cols = ["delta", "delta_lo", "delta_hi", "right_to_wrong", "wrong_to_right", "p_holm"]
        varying = [f for f in FACTORS if f in p and p[f].nunique() > 1]
        print(_fmt(p, [*varying, *cols], 10))
    if "attribution" in t:
        print("\nShapley attribution of the gap (points):")
        print(_fmt(t["attribution"], ["factor", "a", "b", "shapley", "lo", "hi"]))
        print("\n" + out["verdict"])
    if "target" in t:
        print(f"\nConfigs whose 95% interval contains {args.target}:")
        print(_fmt(t["target"], list(t["target"].columns), 10) if len(t["target"]) else "  none")
    print(f"\ntables written to {args.run_dir / 'explain'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
