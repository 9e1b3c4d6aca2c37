"""Assemble report.html (self-contained) and report.md from a finished run dir.

The pages are Jinja2 templates (report/templates/, shipped as package data) filled with
sections; tables become HTML with pandas' `to_html` and Markdown with `to_markdown`
(tabulate), both from the same pre-formatted frame so the two pages show the same digits.
The findings block (analysis/findings.py) heads both pages.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.analysis.attribution import all_coalition_configs
from evalharness.analysis.explain import explain
from evalharness.analysis.ondemand import ConfigSource
from evalharness.analysis.results import RunResults, reference_config, run_dataset
from evalharness.preprocess.errors import StageError
from evalharness.report import plots
from evalharness.rundir.store import write_atomic_bytes, write_atomic_text

MAX_ON_DEMAND = 16  # beyond this many missing coalition configs, the waterfall is skipped


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _fmt_table(df: pd.DataFrame) -> pd.DataFrame:
    return df.map(lambda v: f"{v:.2f}" if isinstance(v, float) else v)


def _markdown(df: pd.DataFrame) -> str:
    # disable_numparse: tabulate would otherwise re-format "100.00" as "100".
    return _fmt_table(df).to_markdown(index=False, disable_numparse=True)


@dataclass
class Table:
    html: str
    md: str

    @classmethod
    def of(cls, df: pd.DataFrame) -> Table:
        return cls(_fmt_table(df).to_html(index=False), _markdown(df))


@dataclass
class Figure:
    file: str  # relative to the run dir (report.md links it)
    uri: str  # data URI (report.html embeds it)
    alt: str
    caption: str = ""


@dataclass
class Section:
    title: str
    verdict: str = ""
    text: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    note: str = ""
    gallery: bool = False


def render(name: str, **context) -> str:
    """One of the package's templates; HTML ones escape every value that is not a table."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("evalharness.report", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",)),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template(name).render(**context)


def choose_b(res: RunResults, a_cfg: dict[str, str], b_over: dict[str, str]) -> dict[str, str]:
    """B as asked; else the worst config of the run (the gap most worth explaining), the
    one the findings block names."""
    from evalharness.analysis.findings import choose_worst

    if b_over:
        return {**a_cfg, **b_over}
    return res.factors_of(choose_worst(res, a_cfg))  # the findings block's worst config


def gallery(run_dir: Path, configs: ConfigSource, res: RunResults, a_cfg, b_cfg, flipped,
            dataset, limit=12):  # fmt: skip
    """Both configs' model inputs (after resize and colour) for images whose prediction flips;
    for detection, the image with the ground truth and each config's boxes (as the task
    declares: Task.gallery)."""
    if res.task.gallery == "boxes":
        return detection_gallery(run_dir, res, a_cfg, b_cfg, flipped, dataset, limit)
    if res.task.gallery != "inputs":
        return []  # text polygons: not drawn yet (the tables and effects cover the task)
    preds = pd.read_parquet(
        run_dir / "predictions.parquet", columns=["config_id", "sample_id", "label", "pred"]
    )
    spec_a, spec_b = configs.spec(a_cfg), configs.spec(b_cfg)
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


MIN_SCORE = 0.3  # the detections agree_ref compares (tasks/detection)


def detection_gallery(run_dir: Path, res: RunResults, a_cfg, b_cfg, flipped, dataset, limit=12):
    """Images whose outcome changed between A and B: ground truth (blue) against A's and
    B's detections with score >= 0.3 (red), on the original image (boxes are mapped back)."""
    from PIL import Image

    cols = ["config_id", "sample_id", "boxes", "scores"]
    preds = pd.read_parquet(run_dir / "predictions.parquet", columns=cols)
    ids = {res.find(a_cfg): "A", res.find(b_cfg): "B"}
    preds = preds[preds.config_id.isin(list(ids)) & preds.sample_id.isin(flipped[:limit])]
    by = {(ids[r.config_id], r.sample_id): r for r in preds.itertuples()}
    samples = {s.sample_id: s for s in dataset.samples}
    items = []
    for sid in flipped[:limit]:
        if ("A", sid) not in by or ("B", sid) not in by or sid not in samples:
            continue
        kept = []
        for side in ("A", "B"):
            r = by[(side, sid)]
            boxes = np.asarray([np.asarray(b) for b in r.boxes]).reshape(-1, 4)
            kept.append(boxes[np.asarray(r.scores, dtype=float) >= MIN_SCORE])
        sample = samples[sid]
        gt = np.asarray(getattr(sample.target, "bbox", ()), dtype=float).reshape(-1, 4)
        gt[:, 2:] += gt[:, :2]  # x, y, w, h -> x1, y1, x2, y2
        try:
            with Image.open(sample.path) as im:
                image = np.asarray(im.convert("RGB"))
        except OSError:
            continue
        png = plots.boxes_side_by_side(
            image, gt, kept[0], kept[1], f"A: {len(kept[0])} boxes", f"B: {len(kept[1])} boxes"
        )
        items.append((sid, f"{len(gt)} objects (truth blue, detections red)", png))
    return items


def _model_view(spec, path) -> object:
    x = path
    for stage in spec.stages[:3]:  # decode, resize, colour: the pixels the model is given
        x = stage(x)
    return x.pixels


def layers_sections(run_dir: Path) -> list[Section]:
    """RUN_DIR/layers/*: one section per `layers` comparison (report/layers.py reads them)."""
    from evalharness.report.layers import layer_sections

    return [
        Section(
            s.title,
            verdict=s.verdict,
            text="; ".join(s.lines),
            figures=[Figure(file, _uri(png), alt) for file, png, alt in s.figures],
            tables=[Table.of(s.table)] if s.table is not None else [],
        )
        for s in layer_sections(run_dir)
    ]


def write_report(
    run_dir: Path,
    configs: ConfigSource,
    b_over: dict[str, str] | None = None,
    n_boot: int = 1000,
    with_findings: bool = True,
    out_dir: Path | None = None,
) -> Path:
    """report.html (self-contained) and report.md for A = the reference and B (the worst
    config unless `b_over` names factors); configs the run lacks come through `configs`."""
    from evalharness.analysis.findings import findings as run_findings

    run_dir = Path(run_dir)
    dataset = run_dataset(run_dir)
    res = RunResults.load(run_dir, dataset)
    a_cfg = reference_config(run_dir, res)
    b_cfg = choose_b(res, a_cfg, b_over or {})
    missing = [c for c in all_coalition_configs(a_cfg, b_cfg) if res.find(c) is None]
    b_arg = {f: v for f, v in b_cfg.items() if v != a_cfg[f]}
    attribute = len(missing) <= MAX_ON_DEMAND and b_arg
    out_dir = Path(out_dir) if out_dir else run_dir  # elsewhere for a read-only run dir
    out = explain(run_dir, configs, {}, b_arg if attribute else {}, None, n_boot,
                  out_dir=out_dir / "explain")  # fmt: skip
    res = out.results  # the run plus any config evaluated on demand
    t = out.tables
    summary = res.summary
    sections: list[Section] = []
    assets = out_dir / "report_assets"
    assets.mkdir(parents=True, exist_ok=True)

    def figure(name: str, png: bytes, alt: str, caption: str = "") -> Figure:
        write_atomic_bytes(assets / name, png)  # renamed into place: a link is replaced
        return Figure(f"report_assets/{name}", _uri(png), alt, caption)

    varying = res.varying_factors()
    m = res.metric
    cols = [*varying, "n", "n_errors", *res.task.metric_columns, "agree_ref"]
    table = summary.sort_values(m, ascending=False, kind="stable")[cols]
    sections.append(
        Section(
            f"Summary ({m} with its 95% CI; agree_ref: share of images whose outcome equals "
            "the reference's)",
            tables=[Table.of(table)],
        )
    )
    if out.verdict:
        terms = [
            (r.factor, r.shapley, r.lo, r.hi)
            for r in t["attribution"].itertuples()
            if r.factor != "residual"
        ]
        a_acc = float(summary.set_index("config_id")[m][res.find(a_cfg)])
        b_label = " ".join(f"{k}={v}" for k, v in b_arg.items())
        png = plots.waterfall(a_acc, terms, b_label, m)
        sections.append(
            Section(
                "Why A and B differ: Shapley attribution",
                verdict=out.verdict,
                figures=[figure("waterfall.png", png, "waterfall")],
                tables=[Table.of(t["attribution"])],
            )
        )
    elif b_arg:
        sections.append(
            Section(
                "Attribution",
                text=f"skipped: {len(missing)} coalition configs missing "
                f"(more than {MAX_ON_DEMAND}); run explain to evaluate them.",
            )
        )
    if not t["effects"].empty:
        png = plots.main_effect_bars(t["effects"], m)
        sections.append(
            Section(
                "Main effects",
                figures=[figure("effects.png", png, "main effects")],
                tables=[Table.of(t["variance"])],
            )
        )
    heat = [
        figure(f"heatmap_{k}.png", png, title)
        for k, (title, png) in enumerate(plots.heatmaps(summary, varying, m))
    ]
    if heat:
        sections.append(Section(f"{m} over pairs of factors", figures=heat))
    pairs = t["pairs"]
    b_id = res.find(b_cfg)
    if b_arg and b_id is not None and b_id in set(pairs.config_id):
        flipped = pairs.set_index("config_id").flipped_ids[b_id]
        flipped = [] if pd.isna(flipped) or not flipped else str(flipped).split(";")
        items = gallery(run_dir, configs, res, a_cfg, b_cfg, flipped, dataset) if dataset else []
        cards = [
            figure(f"flip_{k}.png", png, f"sample {sid}", f"{sid}: label {label}")
            for k, (sid, label, png) in enumerate(items)
        ]
        sections.append(
            Section(
                f"Images whose prediction flips between A and B ({len(flipped)} in all)",
                figures=cards,
                gallery=True,
            )
        )
    sections += layers_sections(run_dir)  # what `evalharness layers` wrote (issue 33)
    prov = summary.filter(like="v_").iloc[0].rename("version").reset_index()
    prov.columns = ["library", "version"]
    sections.append(
        Section(
            "Provenance",
            tables=[Table.of(prov)],
            note=f"dataset hash {summary.dataset_hash.iloc[0]}",
        )
    )
    context = dict(
        run_dir=str(run_dir),
        n_configs=len(summary),
        a_text=" ".join(f"{k}={v}" for k, v in a_cfg.items()),
        findings=run_findings(run_dir, configs, dataset) if with_findings else None,
        sections=sections,
    )
    write_atomic_text(out_dir / "report.html", render("report.html.j2", **context))
    write_atomic_text(out_dir / "report.md", render("report.md.j2", **context))
    return out_dir / "report.html"
