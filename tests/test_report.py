"""report.html / report.md from a real demo sweep: sections, any pair (--a/--b/--other), every
flipped image with both inputs, thumbnails written once, flips.csv (the browser test is
test_report_browser.py)."""

import json
import re
import shutil

import pandas as pd
import pytest

from evalharness.report.build import write_report
from evalharness.runner.ondemand import RunDirConfigs

from .conftest import run_in_process

SWEEP = [
    "+sweep=deployment_gap",
    "sweep.factors.backend=[torch]",
    "sweep.factors.decoder=[pil]",
    "sweep.factors.meanstd=[card]",
    "dataset.limit=60",
    "chunk_size=30",
]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    _, out = run_in_process(SWEEP, tmp_path_factory.mktemp("report"))
    write_report(out, RunDirConfigs(out), {"colour": "bgr", "resize": "cv2_linear"}, n_boot=200)
    return out


def test_report_has_every_section(report_dir):
    page = (report_dir / "report.html").read_text()
    for title in [
        "Summary",
        "Shapley attribution",
        "Effects: each factor against the reference",
        "pairs of factors, centred on the reference",
        "flips between A and B",
        "Per class",
        "Every config against A",
        "Provenance",
    ]:
        assert title in page, title
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 3 and all(i.startswith("data:image/png;base64,") for i in images)
    assert "http://" not in page and "https://" not in page  # self-contained
    md = (report_dir / "report.md").read_text()
    for link in re.findall(r"\]\((report_assets/[^)]+)\)", md):
        assert (report_dir / link).exists()


def test_report_opens_with_the_findings_block(report_dir):
    import html

    from evalharness.analysis.findings import findings

    page = (report_dir / "report.html").read_text()
    assert page.index("<h2>Findings (top1)</h2>") < page.index("<h2>Summary")
    block = findings(report_dir)  # deterministic: the block the sweep prints
    items = [html.unescape(i) for i in re.findall(r"<li>(.*?)</li>", page)]
    assert items == block.lines()
    md = (report_dir / "report.md").read_text()
    assert block.markdown() in md and md.index("## Findings") < md.index("## Summary")


def test_markdown_tables_keep_the_html_digits(report_dir):
    """to_markdown (tabulate) must not re-read '100.00' as a number and print '100'."""
    md = (report_dir / "report.md").read_text()
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in summary.splitlines() if r.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    agree = [r.strip("|").split("|")[-1].strip() for r in rows[2:]]
    assert header[-1] == "agree_ref" and "100.00" in agree  # the reference's own row
    assert all(re.fullmatch(r"\d+\.\d\d", a) for a in agree)
    page = (report_dir / "report.html").read_text()
    assert "<td>100.00</td>" in page


def _gallery(run_dir):
    page = (run_dir / "report.html").read_text()
    data = re.search(r'<script type="application/json" id="eh-gallery-data">(.*?)</script>',
                     page, re.S)  # fmt: skip
    return json.loads(data.group(1).replace("<\\/", "</"))


def test_a_detection_report_draws_truth_and_both_configs_boxes(tmp_path):
    """Demo detector, letterbox (its card) against squash: every image whose detections
    changed has a card; B's drawing on the original image has truth blue and boxes red."""
    import numpy as np
    from PIL import Image

    overrides = ["model=tiny_det", "dataset=demo_det", "+sweep=detection_demo",
                 "sweep.factors.backend=[torch]", "dataset.limit=40"]  # fmt: skip
    _, out = run_in_process(overrides, tmp_path / "run")
    write_report(out, RunDirConfigs(out), {"resize": "squash"}, n_boot=100)
    html = (out / "report.html").read_text()
    assert "Images whose outcome flips between A and B" in html
    g = _gallery(out)
    flips = pd.read_csv(out / "report_assets" / "flips_pair.csv")
    assert len(g["cards"]) == len(flips) > 0
    card = g["cards"][0]
    assert (out / card["a"]["input"]).exists() and (out / card["b"]["input"]).exists()
    drawing = out / card["b"]["panels"][0]["file"]
    rgb = np.asarray(Image.open(drawing).convert("RGB")).astype(int)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)
    blue = (rgb[..., 2] > 200) & (rgb[..., 0] < 80) & (rgb[..., 1] < 140)
    assert red.sum() > 50 and blue.sum() > 50  # both kinds of box are drawn


def test_any_pair_shows_every_flip_with_both_inputs(report_dir):
    """--a resize=cv2_linear --b resize=pil_bilinear: the page's pair is that one, every
    flipped image of it has a card, and each card has both inputs as files."""
    write_report(report_dir, RunDirConfigs(report_dir), {"resize": "pil_bilinear"}, n_boot=200,
                 a_over={"resize": "cv2_linear"})  # fmt: skip
    pairs = pd.read_csv(report_dir / "explain" / "pairs.csv")
    b = pairs[(pairs.resize == "pil_bilinear") & (pairs.colour == "rgb")].iloc[0]
    flipped = set(str(b.flipped_ids).split(";"))
    g = _gallery(report_dir)
    assert {c["sample_id"] for c in g["cards"]} == flipped
    assert g["a_label"] == "A (resize=cv2_linear)" and g["b_label"] == "B (reference)"
    for card in g["cards"]:
        for side in ("a", "b"):
            assert (report_dir / card[side]["input"]).stat().st_size > 0
            assert [p["title"] for p in card[side]["panels"]] == ["top-5"]
        assert (report_dir / card["diff"]["file"]).exists()


def test_thumbnails_are_written_once_per_image_and_config(report_dir):
    from evalharness.report.thumbs import THUMBS

    write_report(report_dir, RunDirConfigs(report_dir), {"resize": "pil_bilinear"}, n_boot=100,
                 a_over={"resize": "cv2_linear"})  # fmt: skip
    files = sorted(report_dir.joinpath(*THUMBS).rglob("*.png"))
    before = {f: f.stat().st_mtime_ns for f in files}
    write_report(report_dir, RunDirConfigs(report_dir), {"resize": "pil_bilinear"}, n_boot=100,
                 a_over={"resize": "cv2_linear"})  # fmt: skip
    assert before and {f: f.stat().st_mtime_ns for f in files} == before


def test_flips_csv_and_per_class_name_each_configs_factors(report_dir):
    assets = report_dir / "report_assets"
    flips = pd.read_csv(assets / "flips.csv")
    for col in ["a_run", "b_run", "sample_id", "label", "direction", "pred_a", "score_a",
                "pred_b", "score_b", "a_resize", "b_resize", "a_colour", "b_colour"]:  # fmt: skip
        assert col in flips.columns, col
    pairs = pd.read_csv(report_dir / "explain" / "pairs.csv")
    assert len(flips) == (pairs.right_to_wrong + pairs.wrong_to_right).sum()
    per_class = pd.read_csv(report_dir / "explain" / "per_class.csv")
    assert {"config_id", "resize", "colour", "backend"} <= set(per_class.columns)
    assert {"resize", "colour"} <= set(pd.read_csv(assets / "per_class.csv").columns)


def test_heatmaps_are_centred_on_the_reference(report_dir):
    page = (report_dir / "report.html").read_text()
    assert "minus the reference config" in page
    assert "0 (white) is the reference" in page


def test_report_against_another_run(report_dir, tmp_path):
    """B from a second run dir: A's factors with --b's change, read from that run; its
    thumbnails are its own (the other run's predictions)."""
    from evalharness.report.thumbs import THUMBS

    other = tmp_path / "other"
    shutil.copytree(report_dir, other, ignore=shutil.ignore_patterns("report*", "explain"))
    write_report(report_dir, RunDirConfigs(report_dir), {"resize": "cv2_linear"}, n_boot=100,
                 other=other, other_configs=RunDirConfigs(other))  # fmt: skip
    page = (report_dir / "report.html").read_text()
    assert "in other" in page and ("B's run" in page or "B&#39;s run" in page)
    g = _gallery(report_dir)
    assert g["cards"] and g["b_label"] == "B (resize=cv2_linear) in other"
    assert all(c["b"]["input"].split("/")[-2].startswith("o") for c in g["cards"])
    flips = pd.read_csv(report_dir / "report_assets" / "flips.csv")
    assert (flips.b_run == "other").sum() == len(g["cards"])
    assert report_dir.joinpath(*THUMBS).exists()


def test_report_command_takes_a_b_and_other(report_dir, capsys):
    from evalharness.commands.report import main

    assert main([str(report_dir), "--a", "colour=bgr", "--b", "colour=rgb",
                 "--bootstrap", "100", "--gallery-limit", "3"]) == 0  # fmt: skip
    assert "report:" in capsys.readouterr().out
    g = _gallery(report_dir)
    assert len(g["cards"]) == 3 and g["a_label"] == "A (colour=bgr)"
