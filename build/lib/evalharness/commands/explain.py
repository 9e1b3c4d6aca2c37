"""`evalharness explain RUN_DIR [--a F=V ...] [--b F=V ...] [--target X]`: prints the
Explanation that analysis/explain.py computes (and `Results.explain()` returns)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  evalharness explain results/gap --b resize=cv2_linear colour=bgr meanstd=half
  evalharness explain results/gap --b resize=cv2_linear,colour=bgr --target 77.28
  evalharness explain results/gap --a backend=onnxruntime --b backend=openvino

A is the model card's reference config unless --a names factors; B is A with the factors
--b names. Tables go to RUN_DIR/explain/ (effects, variance, interactions, pairs,
per_class, attribution, target).
"""


def _fmt(df, cols: list[str], n: int = 20) -> str:
    cols = [c for c in cols if c in df.columns]
    return df[cols].head(n).to_string(index=False, float_format=lambda v: f"{v:.3g}")


def render(out) -> str:
    """The Explanation as the terminal shows it."""
    t, res = out.tables, out.results
    m = res.metric
    lines = [f"Main effects (mean {m} over the configs at each level, 95% CI):"]
    lines.append(_fmt(t["effects"], ["factor", "level", "n_configs", m, f"{m}_lo", f"{m}_hi"], 60))
    lines += ["", "Share of between-config variance:", _fmt(t["variance"], ["factor", "share"])]
    if not t["pairs"].empty:
        lines += [
            "",
            f"Against A ({' '.join(f'{k}={v}' for k, v in out.a.items())}), largest drops:",
        ]
        p = t["pairs"].sort_values("delta", kind="stable")
        worse, better = res.task.flip_names
        cols = ["delta", "delta_lo", "delta_hi", worse, better, "p_holm"]
        varying = [f for f in res.factors if f in p and p[f].nunique() > 1]
        lines.append(_fmt(p, [*varying, *cols], 10))
    if "attribution" in t:
        lines += ["", f"Shapley attribution of the gap ({res.task.unit}):"]
        lines.append(_fmt(t["attribution"], ["factor", "a", "b", "shapley", "lo", "hi"]))
        lines += ["", out.verdict]
    if "target" in t:
        found = t["target"]
        lines += ["", f"Configs whose 95% interval contains {out.target}:"]
        lines.append(_fmt(found, list(found.columns), 10) if len(found) else "  none")
    lines += ["", f"tables written to {out.files}"]
    return "\n".join(lines)


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

    from evalharness.analysis.explain import ExplainError, explain
    from evalharness.commands.assignments import AssignmentError, parse_assignments
    from evalharness.config.plan import PlanError
    from evalharness.runner.ondemand import RunDirConfigs

    try:
        a, b = parse_assignments(args.a), parse_assignments(args.b)
        out = explain(args.run_dir, RunDirConfigs(args.run_dir), a, b, args.target, args.bootstrap)
    except (ExplainError, AssignmentError, FileNotFoundError, PlanError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render(out))
    return 0
