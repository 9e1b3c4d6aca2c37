"""Assemble report.html and report.md for any pair of configs A and B.

A is the model card's reference with `a` changed; B is A with `b` changed (explain's rule),
or the run's worst config, or (with `other`) the config with B's factors in a second run dir.
Configs a run lacks are evaluated on demand through the `ConfigSource` each run comes with.

The page is a list of sections, each made by one function of `SECTIONS` from the `Page` (the
pair, the run's results, explain's tables); a new kind of section (issue 33's layers) is one
more function in that list. Tables are pandas `to_html` (static HTML that reads without
JavaScript) made sortable and filterable by DataTables, loaded from the itables package's
offline bundle embedded in the page; plots are embedded as data URIs; the flipped images are
thumbnails under report_assets/ (report/thumbs.py), loaded lazily by a paginated gallery.
So report.html with report_assets/ beside it is one folder that opens offline. report.md has
the same tables (tabulate, same digits) and links the figures. CSVs of the tables the page
shows are written beside the thumbnails (report_assets/*.csv), flips.csv among them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evalharness.analysis.attribution import all_coalition_configs
from evalharness.analysis.explain import (
    Explanation,
    check_factors,
    explain,
    setting_keys_as_columns,
)
from evalharness.analysis.flips import (
    ConfigRef,
    PairComparison,
    compare_sides,
    flips_against,
    pair_flips,
    prediction_rows,
    rows_by_config,
)
from evalharness.analysis.ondemand import ConfigSource
from evalharness.analysis.results import RunResults, reference_config, run_dataset
from evalharness.report import plots
from evalharness.report.thumbs import Side, build_cards, sample_key
from evalharness.report.views import Reading
from evalharness.rundir.atomic import write_atomic_bytes, write_atomic_csv, write_atomic_text

MAX_ON_DEMAND = 16  # beyond this many missing coalition configs, the waterfall is skipped
ASSETS = "report_assets"
MD_CARDS = 50  # report.md lists this many flipped images; the page and flips.csv have all


class ReportError(ValueError):
    pass


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _fmt_table(df: pd.DataFrame) -> pd.DataFrame:
    return df.map(lambda v: f"{v:.2f}" if isinstance(v, float) else v)


def _markdown(df: pd.DataFrame) -> str:
    # disable_numparse: tabulate would otherwise re-format "100.00" as "100".
    return _fmt_table(df).to_markdown(index=False, disable_numparse=True)


def _assign(config: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in config.items())


@dataclass
class Table:
    html: str
    md: str
    csv: str = ""  # the same rows as a CSV, relative to the page
    caption: str = ""

    @classmethod
    def of(cls, df: pd.DataFrame, interactive: bool = False, csv: str = "",
           caption: str = "") -> Table:  # fmt: skip
        """Static HTML; `interactive` marks it for DataTables (sort, filter, pages)."""
        classes = "eh-table display compact" if interactive else "eh-plain"
        html = _fmt_table(df).to_html(index=False, classes=classes, border=0)
        return cls(html, _markdown(df), csv, caption)


@dataclass
class Figure:
    file: str  # relative to the run dir (report.md links it)
    uri: str  # data URI (report.html embeds it)
    alt: str
    caption: str = ""


@dataclass
class Gallery:
    """The flipped images of the pair: cards as JSON for the page's paginated table."""

    cards: list[dict[str, Any]]
    a_label: str
    b_label: str
    directions: list[str]
    classes: list[str]

    def json(self) -> str:
        data = dict(cards=self.cards, a_label=self.a_label, b_label=self.b_label)
        # "</" would end the <script> element that carries the JSON
        return json.dumps(data, allow_nan=False, default=str).replace("</", "<\\/")


@dataclass
class Section:
    title: str
    id: str = ""  # the anchor the page's contents link to
    verdict: str = ""
    text: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    note: str = ""
    gallery: Gallery | None = None


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


def datatables_bundle() -> tuple[str, str]:
    """DataTables (with jQuery and its extensions) as the itables package ships it for
    offline notebooks: (the ES module, base64; its CSS). Embedded in the page, it needs no
    network; base64 because the source holds '<!--', which changes how HTML parses a
    <script> element's end."""
    from importlib.resources import files

    root = files("itables") / "html"
    js = (root / "dt_bundle.js").read_bytes()
    css = (root / "dt_bundle.css").read_text(encoding="utf-8")
    if "</style" in css.lower():
        raise ReportError("the DataTables CSS cannot be embedded (it holds '</style')")
    return base64.b64encode(js).decode(), css


def choose_b(res: RunResults, a_cfg: dict[str, str], b_over: dict[str, str]) -> dict[str, str]:
    """B as asked; else the worst config of the run (the gap most worth explaining), the
    one the findings block names."""
    from evalharness.analysis.findings import choose_worst

    if b_over:
        return {**a_cfg, **b_over}
    return res.factors_of(choose_worst(res, a_cfg))  # the findings block's worst config


@dataclass
class Page:
    """What every section builder reads."""

    run_dir: Path
    configs: ConfigSource
    res: RunResults  # run A's results, configs evaluated on demand included
    out: Explanation  # explain's tables for run A (A as asked, B when in the same run)
    a: ConfigRef
    b: ConfigRef
    ref_cfg: dict[str, str]  # the model card's reference (the heatmaps' zero)
    comparison: PairComparison
    flips: pd.DataFrame  # the pair's flipped images (analysis/flips.py), most moved first
    dataset: Any
    other: Path | None  # B's run dir, when B comes from another run
    res_b: RunResults
    b_configs: ConfigSource
    gallery_limit: int | None
    assets: Path
    page_dir: Path  # where report.html goes: the run dir, or --out for a read-only one
    notes: list[str] = field(default_factory=list)

    @property
    def same_run(self) -> bool:
        return self.other is None

    @property
    def classes(self) -> list[str]:
        return list(self.dataset.classes) if self.dataset is not None else []

    def figure(self, name: str, png: bytes, alt: str, caption: str = "") -> Figure:
        write_atomic_bytes(self.assets / name, png)  # renamed into place: a link is replaced
        return Figure(f"{ASSETS}/{name}", _uri(png), alt, caption)

    def csv(self, name: str, df: pd.DataFrame) -> str:
        write_atomic_csv(self.assets / name, df)
        return f"{ASSETS}/{name}"

    def label(self, side: str) -> str:
        ref = self.a if side == "A" else self.b
        diff = {f: v for f, v in ref.factors.items() if self.ref_cfg.get(f) != v}
        where = f" in {self.other.name}" if side == "B" and self.other is not None else ""
        return f"{side} ({_assign(diff) if diff else 'reference'}){where}"


# ---------------------------------------------------------------------------- sections


def pair_section(p: Page) -> Section:
    c, m = p.comparison, p.res.metric
    worse, better = p.res.task.flip_names
    fmt = p.res.task.number_format.format
    table = pd.DataFrame([
        {"config": p.label("A"), **p.a.factors, m: c.metric_a},
        {"config": p.label("B"), **p.b.factors, m: c.metric_b},
    ])  # fmt: skip
    text = (
        f"{m}(B) - {m}(A) = {fmt(c.delta)} [{fmt(c.lo)}, {fmt(c.hi)}] {p.res.task.unit} "
        f"(paired bootstrap 95% CI over the {c.n} images both scored); {worse} {c.worse}, "
        f"{better} {c.better}, exact McNemar p = {c.p_mcnemar:.3g}."
    )
    return Section("A and B", "pair", text=text, tables=[Table.of(table)])


def summary_section(p: Page) -> list[Section]:
    out = []
    for res, tag, name in ((p.res, "", "summary.csv"), (p.res_b, " (B's run)", "summary_b.csv")):
        if tag and p.same_run:
            continue
        m = res.metric
        cols = [*res.varying_factors(), "n", "n_errors", *res.task.metric_columns, "agree_ref"]
        cols = [c for c in cols if c in res.summary]
        table = res.summary.sort_values(m, ascending=False, kind="stable")[["config_id", *cols]]
        out.append(Section(
            f"Summary{tag} ({m} with its 95% CI; agree_ref: share of images whose outcome "
            "equals the reference's)",
            "summary" + ("-b" if tag else ""),
            tables=[Table.of(table.drop(columns="config_id"), True, p.csv(name, table))],
        ))  # fmt: skip
    return out


def attribution_section(p: Page) -> Section | None:
    if not p.same_run:
        return None
    b_arg = {f: v for f, v in p.b.factors.items() if v != p.a.factors.get(f)}
    if p.out.verdict:
        t = p.out.tables["attribution"]
        terms = [(r.factor, r.shapley, r.lo, r.hi) for r in t.itertuples()
                 if r.factor != "residual"]  # fmt: skip
        png = plots.waterfall(p.comparison.metric_a, terms, _assign(b_arg), p.res.metric)
        return Section("Why A and B differ: Shapley attribution", "attribution",
                       verdict=p.out.verdict,
                       figures=[p.figure("waterfall.png", png, "waterfall")],
                       tables=[Table.of(t)])  # fmt: skip
    if b_arg:
        missing = [c for c in all_coalition_configs(p.a.factors, p.b.factors)
                   if p.res.find(c) is None]  # fmt: skip
        return Section("Attribution", "attribution",
                       text=f"skipped: {len(missing)} coalition configs missing (more than "
                            f"{MAX_ON_DEMAND}); run explain to evaluate them.")  # fmt: skip
    return None


def effects_section(p: Page) -> Section | None:
    t = p.out.tables
    if t["effects"].empty:
        return None
    m = p.res.metric
    png = plots.main_effect_bars(t["effects"], m)
    shown = t["effects"].drop(columns=["text"], errors="ignore")
    tables = [
        Table.of(
            shown,
            True,
            p.csv("effects.csv", t["effects"]),
            "each level against the reference, all else as the reference",
        )
    ]
    if not t["marginal_means"].empty:
        tables.append(
            Table.of(
                t["marginal_means"],
                True,
                p.csv("marginal_means.csv", t["marginal_means"]),
                "marginal means: each level averaged over the other factors",
            )
        )
    if not t["variance"].empty:
        tables.append(
            Table.of(
                t["variance"],
                caption="share of the between-config variance (a full product of the factors only)",
            )
        )
    note = p.out.variance_note or ""
    return Section(
        "Effects: each factor against the reference",
        "effects",
        text=f"Each bar is the paired difference in {m} between the reference and the "
        "reference with only that factor changed (evaluated on demand when the sweep lacks "
        "it, else a labelled matched-pairs mean), with its 95% interval and the verdict at "
        "the margin (grey band): 'changes the result', 'no effect' (the 90% interval inside "
        "the margin) or 'inconclusive'. The marginal means average each level over the "
        "sweep's other factors, and are not effects.",
        figures=[p.figure("effects.png", png, "effects against the reference")],
        tables=tables,
        note=note,
    )  # fmt: skip


def heatmap_section(p: Page) -> Section | None:
    m = p.res.metric
    ref_id = p.res.find(p.ref_cfg)
    if ref_id is None:
        return None
    ref_value = float(p.res.summary.set_index("config_id")[m][ref_id])
    maps = plots.heatmaps(p.res.summary, p.res.varying_factors(), m, ref_value)
    figs = [p.figure(f"heatmap_{k}.png", png, title) for k, (title, png) in enumerate(maps)]
    if not figs:
        return None
    return Section(
        f"{m} over pairs of factors, centred on the reference",
        "heatmaps",
        text=f"Each cell: the mean {m} over the other factors (a marginal mean) minus the "
        f"reference config's {m} ({ref_value:.2f}); 0 (white) is the reference, red below it, "
        "blue above.",
        figures=figs,
    )


def gallery_section(p: Page) -> Section:
    flips = p.flips
    n = len(flips)
    shown = flips if p.gallery_limit is None else flips.head(p.gallery_limit)
    title = f"Images whose outcome flips between A and B ({n} in all)"
    csv = p.csv("flips_pair.csv", flips)
    if not n:
        return Section(title, "flips", text="No image changes its outcome between A and B.")
    side_a, side_b = _sides(p)
    ids = [str(s) for s in shown.sample_id]
    rows_a = _rows(p.a, ids)
    rows_b = _rows(p.b, ids)
    cards = build_cards(p.page_dir, side_a, side_b, ids, rows_a, rows_b)
    data = []
    for card, r in zip(cards, shown.itertuples(index=False), strict=True):
        data.append(dict(
            sample_id=card.sample_id, label=r.label, direction=r.direction,
            classes=[c for c in str(r.label).split(", ") if c],
            moved=_num(r.moved), pred_a=r.pred_a, score_a=_num(r.score_a), pred_b=r.pred_b,
            score_b=_num(r.score_b), a=card.a, b=card.b, diff=card.diff,
            key=sample_key(r.sample_id),
        ))  # fmt: skip
    notes = sorted({c[s].get("note", "") for c in data for s in ("a", "b")} - {""})
    classes = sorted({c for d in data for c in d["classes"]})
    gallery = Gallery(data, p.label("A"), p.label("B"), list(p.res.task.flip_names), classes)
    text = (
        "Per image: what each config's model saw (its input tensor read back with the "
        "reference's mean/std and channel order, at model resolution), the amplified "
        "|A - B| of the two inputs, and each config's output as the task draws it (truth "
        "blue, the config's output red). Inputs and raw outputs are re-computed here for "
        "these images; predictions and scores are the run's own. 'moved': how far the "
        "image moved (the true class's logit for classification, else the per-image score)."
    )
    if len(shown) < n:
        text += f" The first {len(shown)} by 'moved' are drawn (--gallery-limit)."
    tables = [Table.of(flips[_FLIP_COLUMNS], True, csv)]
    return Section(title, "flips", text=text, tables=tables, gallery=gallery,
                   note="; ".join(notes))  # fmt: skip


_FLIP_COLUMNS = ["sample_id", "label", "direction", "pred_a", "score_a", "pred_b", "score_b",
                 "moved"]  # fmt: skip


def _num(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _rows(ref: ConfigRef, ids: list[str]) -> dict[str, dict]:
    rows = rows_by_config(prediction_rows(ref.run_dir, [ref.config_id], ids))
    return rows.get(ref.config_id, {})


def _sides(p: Page) -> tuple[Side, Side]:
    import hashlib

    reading = Reading.of(p.configs.spec(p.ref_cfg))  # how the model reads its input
    a = Side("A", p.a, p.configs, p.a.config_id, p.dataset, p.classes, reading)
    key_b = p.b.config_id
    dataset_b = p.dataset
    if p.other is not None:
        tag = hashlib.sha1(str(p.other.resolve()).encode()).hexdigest()[:8]
        key_b = f"o{tag}-{p.b.config_id}"  # the other run's predictions, its own files
        dataset_b = run_dataset(p.other) or p.dataset
    b = Side("B", p.b, p.b_configs, key_b, dataset_b, p.classes, reading)
    return a, b


def per_class_section(p: Page) -> Section | None:
    t = p.out.tables.get("per_class")
    if t is None or t.empty:
        return None
    return Section(
        f"Per class ({p.res.metric} per class and config)",
        "per-class",
        tables=[Table.of(t.drop(columns="config_id"), True, p.csv("per_class.csv", t))],
    )


def pairs_section(p: Page) -> Section | None:
    t = p.out.tables["pairs"]
    if t.empty:
        return None
    shown = t.drop(columns=["flipped_ids"])
    return Section(
        "Every config against A",
        "pairs",
        text="Paired: delta with its 95% interval, the images each config makes worse and "
        "better than A, exact McNemar p with Holm's adjustment. flips.csv has one row per "
        "flipped image and pair.",
        tables=[Table.of(shown, True, p.csv("pairs.csv", t))],
    )


def provenance_section(p: Page) -> Section:
    def versions(ref: ConfigRef) -> pd.Series:
        row = ref.results.summary.set_index("config_id").loc[ref.config_id]
        return row.filter(like="v_")

    va = versions(p.a)
    table = va.rename("version").rename_axis("library").reset_index()
    note = f"dataset hash {p.res.summary.dataset_hash.iloc[0]}"
    if not p.same_run:
        vb = versions(p.b).reindex(va.index.union(versions(p.b).index))
        both = pd.DataFrame({"A's run": va.reindex(vb.index), "B's run": vb})
        both["differs"] = both["A's run"].astype(str) != both["B's run"].astype(str)
        table = both.rename_axis("library").reset_index()
        note += f"; B's run: {p.res_b.summary.dataset_hash.iloc[0]}"
    return Section("Provenance", "provenance", tables=[Table.of(table)], note=note)


SectionBuilder = Callable[[Page], "Section | list[Section] | None"]

# The page, top to bottom; a new section is one more builder here.
SECTIONS: list[SectionBuilder] = [
    pair_section,
    summary_section,
    attribution_section,
    effects_section,
    heatmap_section,
    gallery_section,
    per_class_section,
    pairs_section,
    lambda p: layers_sections(p.run_dir),  # what `evalharness layers` wrote
    provenance_section,
]


# ---------------------------------------------------------------------------- the pair


def _resolve_b_other(other: Path, b_configs: ConfigSource, res: RunResults, a_cfg: dict,
                     b_over: dict) -> tuple[RunResults, dict[str, str]]:  # fmt: skip
    """B in another run: A's factors with `b_over` changed, evaluated there on demand when
    that run lacks it."""
    res_b = RunResults.load(other, run_dataset(other))
    if res_b.metric != res.metric:
        raise ReportError(f"A's run reports {res.metric}, B's run {res_b.metric}: not one task")
    b_over = setting_keys_as_columns(b_over, res_b)
    check_factors(b_over, res_b)
    b_cfg = {f: v for f, v in {**a_cfg, **b_over}.items() if f in res_b.factors}
    if res_b.find(b_cfg) is None:
        res_b = res_b.merged(b_configs.evaluate([b_cfg]))
    return res_b, b_cfg


def layers_sections(run_dir: Path) -> list[Section]:
    """RUN_DIR/layers/*: one section per `layers` comparison (report/layers.py reads them)."""
    from evalharness.report.layers import layer_sections

    return [
        Section(
            s.title,
            f"layers-{k}",
            verdict=s.verdict,
            text="; ".join(s.lines),
            figures=[Figure(file, _uri(png), alt) for file, png, alt in s.figures],
            tables=[Table.of(s.table)] if s.table is not None else [],
        )
        for k, s in enumerate(layer_sections(run_dir))
    ]


def write_report(
    run_dir: Path,
    configs: ConfigSource,
    b_over: dict[str, str] | None = None,
    n_boot: int = 1000,
    with_findings: bool = True,
    a_over: dict[str, str] | None = None,
    other: Path | None = None,
    other_configs: ConfigSource | None = None,
    gallery_limit: int | None = None,
    out_dir: Path | None = None,
) -> Path:
    """report.html and report.md for A (the reference with `a_over` changed) and B (A with
    `b_over` changed; the worst config when neither names B; with `other`, B's factors in
    that run dir, whose configs come through `other_configs`)."""
    from evalharness.analysis.findings import findings as run_findings

    run_dir = Path(run_dir)
    dataset = run_dataset(run_dir)
    res = RunResults.load(run_dir, dataset)
    a_over = setting_keys_as_columns({k: str(v) for k, v in (a_over or {}).items()}, res)
    b_over = {k: str(v) for k, v in (b_over or {}).items()}
    check_factors(a_over, res)
    ref_cfg = reference_config(run_dir, res)
    out_dir = Path(out_dir) if out_dir else run_dir  # elsewhere for a read-only run dir
    a_cfg = {**ref_cfg, **a_over}
    if other is not None:
        other = Path(other)
        b_configs = other_configs if other_configs is not None else configs
        res_b, b_cfg = _resolve_b_other(other, b_configs, res, a_cfg, b_over)
        out = explain(run_dir, configs, a_over, {}, None, n_boot, out_dir=out_dir / "explain")
        res = out.results
    else:
        b_configs = configs
        b_over = setting_keys_as_columns(b_over, res)
        check_factors(b_over, res)
        b_cfg = choose_b(res, a_cfg, b_over)
        b_arg = {f: v for f, v in b_cfg.items() if v != a_cfg.get(f)}
        missing = [c for c in all_coalition_configs(a_cfg, b_cfg) if res.find(c) is None]
        attribute = bool(b_arg) and len(missing) <= MAX_ON_DEMAND
        out = explain(run_dir, configs, a_over, b_arg if attribute else {}, None, n_boot,
                      out_dir=out_dir / "explain")  # fmt: skip
        res = out.results  # the run plus any config evaluated on demand
        if res.find(b_cfg) is None:
            res = res.merged(configs.evaluate([b_cfg]))
        res_b = res
    a_ref = ConfigRef(run_dir, res, out.a_id)
    b_ref = ConfigRef(other or run_dir, res_b, res_b.find(b_cfg))
    comparison = compare_sides(a_ref, b_ref, n_boot)
    classes = list(dataset.classes) if dataset is not None else []
    flips = pair_flips(a_ref, b_ref, classes)
    if not flips.empty:
        flips = flips.sort_values("moved", ascending=False, kind="stable")
    assets = out_dir / ASSETS
    assets.mkdir(parents=True, exist_ok=True)
    page = Page(run_dir, configs, res, out, a_ref, b_ref, ref_cfg, comparison, flips, dataset,
                other, res_b, b_configs, gallery_limit, assets, out_dir)  # fmt: skip
    _write_flips_csv(page, classes)
    sections: list[Section] = []
    for builder in SECTIONS:
        made = builder(page)
        sections += made if isinstance(made, list) else [made] if made is not None else []
    gallery = next((s.gallery for s in sections if s.gallery is not None), None)
    dt_js, dt_css = datatables_bundle()
    context = dict(
        run_dir=str(run_dir),
        n_configs=len(res.summary),
        a_text=p_text(page, "A"),
        b_text=p_text(page, "B"),
        findings=run_findings(run_dir, configs, dataset) if with_findings else None,
        sections=sections,
        gallery=gallery,
        dt_js=dt_js,
        dt_css=dt_css,
        md_cards=(gallery.cards[:MD_CARDS] if gallery else []),
    )
    write_atomic_text(out_dir / "report.html", render("report.html.j2", **context))
    write_atomic_text(out_dir / "report.md", render("report.md.j2", **context))
    return out_dir / "report.html"


def p_text(page: Page, side: str) -> str:
    ref = page.a if side == "A" else page.b
    where = f" ({page.other})" if side == "B" and page.other is not None else ""
    return _assign(ref.factors) + where


def _write_flips_csv(page: Page, classes: list[str]) -> None:
    """flips.csv: every config of run A against A, one row per flipped image and pair, and
    the page's pair when B comes from another run; the runs are named."""
    frames = []
    every = flips_against(page.run_dir, page.res, page.a.config_id, classes)
    if not every.empty:
        frames.append(every.assign(a_run=page.run_dir.name, b_run=page.run_dir.name))
    if not page.same_run and not page.flips.empty:
        frames.append(page.flips.assign(a_run=page.run_dir.name, b_run=page.other.name))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not table.empty:
        first = ["a_run", "b_run"]
        table = table[first + [c for c in table.columns if c not in first]]
    write_atomic_csv(page.assets / "flips.csv", table)
