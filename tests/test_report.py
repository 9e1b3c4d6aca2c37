"""report.html / report.md from a real demo sweep, and the page checked in headless Chromium."""

import re
import shutil

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
        "Main effects",
        "pairs of factors",
        "flips between A and B",
        "Provenance",
    ]:
        assert title in page, title
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 4 and all(i.startswith("data:image/png;base64,") for i in images)
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


def _chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return browser, driver


@pytest.mark.slow
@pytest.mark.skipif(not all(_chromium()), reason="needs Debian's chromium and chromium-driver")
def test_report_renders_in_headless_chromium(report_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = _chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1300,2400",
    ]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.get((report_dir / "report.html").as_uri())
        rendered = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
        )
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        driver.save_screenshot(str(report_dir / "report_screenshot.png"))
    finally:
        driver.quit()
    assert rendered and all(rendered), rendered
    assert errors == []
    assert (report_dir / "report_screenshot.png").stat().st_size > 10_000


def test_a_detection_report_draws_truth_and_both_configs_boxes(tmp_path):
    """Demo detector, letterbox (its card) against squash: the gallery shows the images whose
    detections changed, on the original image, ground truth blue and detections red."""
    import numpy as np
    from PIL import Image

    overrides = ["model=tiny_det", "dataset=demo_det", "+sweep=detection_demo",
                 "sweep.factors.backend=[torch]", "dataset.limit=40"]  # fmt: skip
    _, out = run_in_process(overrides, tmp_path / "run")
    write_report(out, RunDirConfigs(out), {"resize": "squash"}, n_boot=100)
    html = (out / "report.html").read_text()
    assert "Images whose prediction flips between A and B" in html
    assert "truth blue, detections red" in html
    flips = sorted((out / "report_assets").glob("flip_*.png"))
    assert flips
    rgb = np.asarray(Image.open(flips[0]).convert("RGB")).astype(int)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)
    blue = (rgb[..., 2] > 200) & (rgb[..., 0] < 80) & (rgb[..., 1] < 140)
    assert red.sum() > 50 and blue.sum() > 50  # both kinds of box are drawn
