"""`evalharness explain RUN_DIR [--a F=V ...] [--b F=V ...] [--target X]`: prints the
Explanation that analysis/explain.py computes (and `Results.explain()` returns)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evalharness.commands.output import add_trust_flag, refuse_links, writable_dir

EPILOG = """\
examples:
  evalharness explain results/gap --b resize=cv2_linear colour=bgr meanstd=half
  evalharness explain results/gap --b resize=cv2_linear,colour=bgr --target 77.28
  evalharness explain results/gap --a backend=onnxruntime --b backend=openvino

A is the model card's reference config unless --a names factors; B is A with the factors
--b names. Tables go to RUN_DIR/explain/ (effects, variance, interactions, pairs,
per_class, attribution, target), or to --out DIR (a read-only run dir), with any config
evaluated on demand.
"""


def _fmt(df, cols: list[str], n: int = 20) -> str:
    cols = [c for c in cols if c in df.columns]
    return df[cols].head(n).to_string(index=False, float_format=lambda v: f"{v:.3g}")


def render(out) -> str:
    """The Explanation as the terminal shows it."""
    t, res = out.tables, out.results
    m = res.metric
    unit = res.task.unit
    lines = [
        f"Effects against the reference (single changes; verdicts at ±{out.margin:g} {unit}: "
        "changes the result / no effect / inconclusive):"
    ]
    for fe in out.factor_effects:
        lines.append(f"  {fe.factor}: {fe.word}")
        for e in fe.levels:
            note = (
                ""
                if e.how.startswith("single change") and "demand" not in e.how
                else (f" [{e.how}]")
            )
            lines.append(f"    {e.level} vs {fe.reference}: {e.verdict.text()}{note}")
            if e.contrast is not None and e.contrast.errors is not None:
                err = e.contrast.errors
                lines.append(
                    f"      errors: {err.images} image(s) failed in one config only: "
                    f"{err.errors:+.2f} {unit} of the gap (the verdict reads the rest)"
                )
    lines += [
        "",
        f"Marginal means (mean {m} of the configs at each level, averaged over the other "
        "factors: not effects; 95% CI):",
        _fmt(t["marginal_means"], ["factor", "level", "n_configs", m, f"{m}_lo", f"{m}_hi"], 60),
    ]
    if len(t["variance"]):
        lines += ["", "Share of between-config variance:", _fmt(t["variance"], ["factor", "share"])]
    else:
        lines += ["", f"No variance shares: {out.variance_note}"]
    if not t["pairs"].empty:
        lines += [
            "",
            f"Against A ({' '.join(f'{k}={v}' for k, v in out.a.items())}), largest drops:",
        ]
        p = t["pairs"].sort_values("delta", kind="stable")
        worse, better = res.task.flip_names
        cols = ["delta", "delta_lo", "delta_hi", "verdict", worse, better, "error_images", "p_holm"]
        varying = [f for f in res.factors if f in p and p[f].nunique() > 1]
        lines.append(_fmt(p, [*varying, *cols], 10))
    if "attribution" in t:
        lines += ["", f"Shapley attribution of the gap ({unit}):"]
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
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (>= 100)")
    ap.add_argument(
        "--margin",
        type=float,
        help="'no effect within ±margin', in the metric's units (default: the run's "
        "findings.margin, else 0.5 points for top-1/mAP/hmean, 0.05 dB for psnr_y)",
    )
    ap.add_argument("--out", type=Path, help="write the tables (and on-demand configs) here")
    add_trust_flag(ap)
    args = ap.parse_args(argv)

    from evalharness.analysis.explain import ExplainError, explain
    from evalharness.commands.assignments import AssignmentError, parse_assignments
    from evalharness.config.plan import PlanError
    from evalharness.rundir.records import trusting_edits
    from evalharness.runner.ondemand import RunDirConfigs
    from evalharness.stats.paired import check_resamples

    check_resamples(args.bootstrap)
    if args.out is None:
        refuse_links(args.run_dir, ("explain",))
    if not writable_dir(args.run_dir, args.out):
        raise ValueError(f"cannot write {args.run_dir / 'explain'} (read-only); give --out DIR")
    try:
        a, b = parse_assignments(args.a), parse_assignments(args.b)
        configs = RunDirConfigs(args.run_dir, args.out)
        with trusting_edits(args.trust_edited):
            out = explain(
                args.run_dir, configs, a, b, args.target, args.bootstrap, args.margin,
                out_dir=args.out,
            )  # fmt: skip
    except (ExplainError, AssignmentError, FileNotFoundError, PlanError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render(out))
    return 0
