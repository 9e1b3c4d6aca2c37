"""`evalharness layers RUN_DIR --a F=V... --b F=V... [--n 64] [--try-exclude K]`: prints the
layerwise comparison runner/layers.py computes (and `Results.layers()` returns)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  evalharness layers results/int8 --a backend=onnxruntime precision=int8_ort \\
      --b backend=openvino
  evalharness layers results/int8 --a backend=onnxruntime --b precision=int8_ort \\
      --try-exclude 3

A is the model card's reference config with --a's factors; B is A with --b's. The images
whose outcome differs between A and B (up to --n) and as many where they agree run through
both configs with their intermediate tensors exposed (onnxruntime, OpenVINO, torch, ncnn);
per layer in graph order: relative L2 / SQNR, cosine and max |diff| (median and p90) on the
flipped and on the control images, the first layer above --threshold per image, the layers
whose own step adds the most error. --try-exclude K re-quantizes the int8 side with those K
layers in float and evaluates it on the whole dataset. Files: RUN_DIR/layers/<A>_vs_<B>-*/.
"""

SHOW = {  # layers.csv column -> the terminal's header
    "depth": "d",
    "step": "step",
    "rel_l2_flipped_med": "relL2 flip",
    "rel_l2_flipped_p90": "p90",
    "rel_l2_control_med": "relL2 ctrl",
    "rel_l2_control_p90": "p90 ",
    "ratio": "ratio",
    "sqnr_db_flipped_med": "SQNR flip",
    "cosine_flipped_med": "cos flip",
    "max_abs_flipped_p90": "max|d| p90",
    "added_flipped_med": "added",
    "first_flipped": "first",
    "observer_a": "obs A",
    "observer_b": "obs B",
}


def _short(name: str, width: int = 44) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def table_rows(run, rows: int) -> list[str]:
    """The per-layer table: every layer when there are few, else the ones a reader needs."""
    r = run.result
    t = r.table
    if len(t) > rows:
        keep = {t.index[0], t.index[-1], r.first_difference, r.parting_layer,
                r.contrast_layer(), *(n for n, _ in r.top_added)}  # fmt: skip
        t = t[t.index.isin(keep)]
    view = t[[c for c in SHOW if c in t.columns]].rename(columns=SHOW)
    view.index = [_short(i) for i in view.index]
    return view.to_string(float_format=lambda v: f"{v:.4g}").splitlines()


def render(run, rows: int = 40) -> str:
    r = run.result
    a, b = r.a, r.b
    lines = [
        f"A: {a}   B: {b}",
        f"{run.n_flips} of {run.n_images} images change outcome between A and B; analysed "
        f"{r.n_flipped} flipped + {r.n_control} control images, {len(r.table)} layers compared",
    ]
    lines += [f"observer: {line}" for line in r.observer_lines()]
    if run.reproduced is not None:
        k, n = run.reproduced
        lines.append(f"the probes' top-1 equal the run's predictions on {k} of {n} images")
    lines += run.notes
    shown = "" if len(r.table) <= rows else " (selected rows; every layer in layers.csv)"
    lines += ["", f"per layer, B against A{shown}:", *table_rows(run, rows), ""]
    hist = r.first_divergence[r.first_divergence > 0]
    ctrl = r.first_divergence_control[r.first_divergence_control > 0]
    lines.append(f"first divergence (rel L2 > {r.threshold:g}), flipped: "
                 + ", ".join(f"{_short(k, 40)} {v}" for k, v in hist.items()))  # fmt: skip
    lines.append("first divergence, control: "
                 + ", ".join(f"{_short(k, 40)} {v}" for k, v in ctrl.items()))  # fmt: skip
    lines.append("most added error (flipped, median rel L2): "
                 + ", ".join(f"{_short(n, 40)} +{v:.4f}" for n, v in r.top_added))  # fmt: skip
    for side, un in (("A", r.unmatched_a), ("B", r.unmatched_b)):
        if un:
            reasons: dict[str, int] = {}
            for why in un.values():
                reasons[why] = reasons.get(why, 0) + 1
            text = "; ".join(f"{k} ({v})" for k, v in reasons.items())
            lines.append(f"not compared on {side}: {len(un)} tensors: {text}")
    first = r.first_difference
    lines.append(
        "first layer where any flipped image differs at all: "
        + (f"{first} (depth {r.table.at[first, 'depth']})" if first else "none")
    )
    if run.exclude is not None:
        lines += ["", *run.exclude.lines(run.metric)]
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in run.seconds.items())
    lines += ["", f"VERDICT: {r.verdict}", f"time: {secs}", f"written: {run.out_dir}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Where in the network two configs of a run dir part (layer by layer).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--a", nargs="*", help="config A as factor=value (default: the reference)")
    ap.add_argument("--b", nargs="+", required=True, help="config B: A with these factors")
    ap.add_argument("--n", type=int, default=64, help="flipped images, and as many controls")
    ap.add_argument(
        "--threshold",
        type=float,
        default=0.05,
        help="rel L2 above which a layer counts as parted (first divergence)",
    )
    ap.add_argument(
        "--try-exclude",
        type=int,
        default=0,
        metavar="K",
        help="re-quantize with the K layers adding the most error in float",
    )
    ap.add_argument("--seed", type=int, default=0, help="which images, when there are more")
    args = ap.parse_args(argv)  # fmt: skip

    from evalharness.commands.assignments import AssignmentError, parse_assignments
    from evalharness.config.plan import PlanError
    from evalharness.runner.layers import run_layers

    try:
        a, b = parse_assignments(args.a), parse_assignments(args.b)
        run = run_layers(args.run_dir, a, b, n=args.n, threshold=args.threshold,
                         try_exclude=args.try_exclude, seed=args.seed)  # fmt: skip
    except (AssignmentError, FileNotFoundError, PlanError) as e:  # other ValueErrors: one
        # `error:` line from commands.run_command (a trace with EVALHARNESS_DEBUG=1)
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render(run))
    return 0
