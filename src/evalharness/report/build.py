"""Assemble report.html (self-contained) and report.md from a finished run dir."""

from __future__ import annotations

import argparse
import base64
import html
import sys
from pathlib import Path

import pandas as pd

from evalharness.analysis.attribution import all_coalition_configs
from evalharness.analysis.results import RunResults
from evalharness.explain import explain, parse_assignments
from evalharness.preprocess.errors import StageError
from evalharness.report import plots
from evalharness.rundir import reference_config, run_dataset, spec_for

MAX_ON_DEMAND = 16  # beyond this many missing coalition configs, the waterfall is skipped

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
.gallery{display:flex;flex-wrap:wrap;gap:8px} .gallery figure{margin:0}
figcaption{font-size:11px;max-width:420px} img{max-width:100%}
.verdict{background:#fff8e1;padding:0.6em;border-left:4px solid #f0a000}
"""


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _fmt_table(df: pd.DataFrame) -> pd.DataFrame:
    return df.map(lambda v: f"{v:.2f}" if isinstance(v, float) else v)


def _markdown(df: pd.DataFrame) -> str:
    df = _fmt_table(df)
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def choose_b(res: RunResults, a_cfg: dict[str, str], b_over: dict[str, str]) -> dict[str, str]:
    """B as asked; else the worst config of the run (the gap most worth explaining)."""
    if b_over:
        return {**a_cfg, **b_over}
    worst = res.summary.sort_values(res.metric, kind="stable").iloc[0]
    return {f: str(worst[f]) for f in res.factors}


def gallery(run_dir: Path, res: RunResults, a_cfg, b_cfg, flipped: list[str], dataset, limit=12):
    """Both configs' model inputs (after resize and colour) for images whose prediction flips."""
    if res.task.name != "classification":
        return []  # galleries of boxes and polygons: see report/boxes.py (not yet for this task)
    preds = pd.read_parquet(
        run_dir / "predictions.parquet", columns=["config_id", "sample_id", "label", "pred"]
    )
    spec_a, spec_b = spec_for(run_dir, a_cfg), spec_for(run_dir, b_cfg)
    paths = {s.sample_id: s.path for s in dataset.samples}
    classes = dataset.classes
    items = []
    for sid in flipped[:limit]:
        pa = preds[(preds.config_id == res.find(a_cfg)) & (preds.sample_id == sid)].iloc[0]
        pb = preds[(preds.config_id == res.find(b_cfg)) & (preds.sample_id == sid)].iloc[0]
        try:
            img_a = _model_view(spec_a, paths[sid])
            img_b = _model_view(spec_b, paths[sid])
        except (StageError, KeyError):
            continue
        name = lambda i: classes[i] if 0 <= i < len(classes) else str(i)  # noqa: E731
        png = plots.side_by_side(img_a, img_b, f"A: {name(pa.pred)}", f"B: {name(pb.pred)}")
        items.append((sid, name(pa.label), png))
    return items


def _model_view(spec, path) -> object:
    x = path
    for stage in spec.stages[:3]:  # decode, resize, colour: the pixels the model is given
        x = stage(x)
    return x.pixels


def write_report(run_dir: Path, b_over: dict[str, str] | None = None, n_boot: int = 1000) -> Path:
    run_dir = Path(run_dir)
    dataset = run_dataset(run_dir)
    res = RunResults.load(run_dir, dataset)
    a_cfg = reference_config(run_dir, res)
    b_cfg = choose_b(res, a_cfg, b_over or {})
    missing = [c for c in all_coalition_configs(a_cfg, b_cfg) if res.find(c) is None]
    b_arg = {f: v for f, v in b_cfg.items() if v != a_cfg[f]}
    attribute = len(missing) <= MAX_ON_DEMAND and b_arg
    out = explain(run_dir, {}, b_arg if attribute else {}, None, n_boot)
    res = out["results"]  # the run plus any config evaluated on demand
    t = out["tables"]
    summary = res.summary
    sections_html, sections_md = [], []
    assets = run_dir / "report_assets"
    assets.mkdir(exist_ok=True)

    def add(title: str, body_html: str, body_md: str) -> None:
        sections_html.append(f"<h2>{html.escape(title)}</h2>\n{body_html}")
        sections_md.append(f"## {title}\n\n{body_md}\n")

    def figure(name: str, png: bytes, alt: str) -> tuple[str, str]:
        (assets / name).write_bytes(png)
        return (
            f'<img src="{_uri(png)}" alt="{html.escape(alt)}">',
            f"![{alt}](report_assets/{name})",
        )

    varying = res.varying_factors()
    m = res.metric
    cols = [*varying, "n", "n_errors", *res.task.metric_columns, "agree_ref"]
    table = summary.sort_values(m, ascending=False, kind="stable")[cols]
    add(
        f"Summary ({m} with its 95% CI; agree_ref: share of images whose outcome equals "
        "the reference's)",
        _fmt_table(table).to_html(index=False),
        _markdown(table),
    )
    if "verdict" in out:
        terms = [
            (r.factor, r.shapley, r.lo, r.hi)
            for r in t["attribution"].itertuples()
            if r.factor != "residual"
        ]
        a_acc = float(summary.set_index("config_id")[m][res.find(a_cfg)])
        b_label = " ".join(f"{k}={v}" for k, v in b_arg.items())
        png = plots.waterfall(a_acc, terms, b_label, m)
        h, md = figure("waterfall.png", png, "waterfall")
        verdict = html.escape(out["verdict"])
        add(
            "Why A and B differ: Shapley attribution",
            f'<p class="verdict">{verdict}</p>{h}'
            + _fmt_table(t["attribution"]).to_html(index=False),
            f"> {out['verdict']}\n\n{md}\n\n{_markdown(t['attribution'])}",
        )
    elif b_arg:
        add(
            "Attribution",
            f"<p>skipped: {len(missing)} coalition configs missing "
            f"(more than {MAX_ON_DEMAND}); run explain to evaluate them.</p>",
            "skipped",
        )
    if not t["effects"].empty:
        h, md = figure("effects.png", plots.main_effect_bars(t["effects"], m), "main effects")
        add(
            "Main effects",
            h + _fmt_table(t["variance"]).to_html(index=False),
            md + "\n\n" + _markdown(t["variance"]),
        )
    heat_html, heat_md = [], []
    for k, (title, png) in enumerate(plots.heatmaps(summary, varying, m)):
        h, md = figure(f"heatmap_{k}.png", png, title)
        heat_html.append(h)
        heat_md.append(md)
    if heat_html:
        add(f"{m} over pairs of factors", "".join(heat_html), "\n".join(heat_md))
    pairs = t["pairs"]
    b_id = res.find(b_cfg)
    if b_arg and b_id is not None and b_id in set(pairs.config_id):
        flipped = pairs.set_index("config_id").flipped_ids[b_id]
        flipped = [] if pd.isna(flipped) or not flipped else str(flipped).split(";")
        items = gallery(run_dir, res, a_cfg, b_cfg, flipped, dataset) if dataset else []
        cards_html, cards_md = [], []
        for k, (sid, label, png) in enumerate(items):
            h, md = figure(f"flip_{k}.png", png, f"sample {sid}")
            cards_html.append(
                f"<figure>{h}<figcaption>{html.escape(sid)}: label "
                f"{html.escape(label)}</figcaption></figure>"
            )
            cards_md.append(f"{md} {sid} (label {label})")
        add(
            f"Images whose prediction flips between A and B ({len(flipped)} in all)",
            f'<div class="gallery">{"".join(cards_html)}</div>',
            "\n\n".join(cards_md),
        )
    prov = summary.filter(like="v_").iloc[0].rename("version").reset_index()
    prov.columns = ["library", "version"]
    add(
        "Provenance",
        prov.to_html(index=False) + f"<p>dataset hash "
        f"{html.escape(str(summary.dataset_hash.iloc[0]))}</p>",
        _markdown(prov),
    )
    a_text = " ".join(f"{k}={v}" for k, v in a_cfg.items())
    intro = (
        f"<p>Run: {html.escape(str(run_dir))}. {len(summary)} configs. "
        f"A (reference): {html.escape(a_text)}</p>"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>evalharness report"
        f"</title><style>{STYLE}</style></head><body><h1>evalharness report</h1>{intro}"
        + "\n".join(sections_html)
        + "</body></html>"
    )
    (run_dir / "report.html").write_text(page)
    (run_dir / "report.md").write_text(
        f"# evalharness report\n\nA (reference): {a_text}\n\n" + "\n".join(sections_md)
    )
    return run_dir / "report.html"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write report.html and report.md for a run dir.")
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--b", nargs="*", help="config B as factor=value (default: the worst config)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args(argv)
    path = write_report(args.run_dir, parse_assignments(args.b), args.bootstrap)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
