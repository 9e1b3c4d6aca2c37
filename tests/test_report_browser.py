"""The report in a real browser (Debian's chromium + chromium-driver, headless, no network):
a classification and a detection page load their tables from the embedded DataTables
bundle, a table sorts, the gallery filters, and a flipped image's card shows both inputs.

EVALHARNESS_SCREENSHOTS=DIR keeps a screenshot of each page there (docs/ has them).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from evalharness.report.build import write_report
from evalharness.runner.ondemand import RunDirConfigs

from .conftest import run_in_process


def _chromium() -> tuple[str | None, str | None]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    return browser, shutil.which("chromedriver")


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not all(_chromium()), reason="needs Debian's chromium and chromium-driver"),
]

CLASSIFICATION = ["+sweep=deployment_gap", "sweep.factors.backend=[torch]",
                  "sweep.factors.decoder=[pil]", "sweep.factors.meanstd=[card]",
                  "dataset.limit=60", "chunk_size=30"]  # fmt: skip
DETECTION = ["model=tiny_det", "dataset=demo_det", "+sweep=detection_demo",
             "sweep.factors.backend=[torch]", "dataset.limit=40"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _chromium()
    profile = tempfile.mkdtemp(prefix="eh-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1500,1600",
                 f"--user-data-dir={profile}"]:  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(driver, page: Path) -> None:
    driver.get(page.as_uri())
    for _ in range(200):  # the bundle is decoded and imported as a module: ~1 s
        state = driver.execute_script("return document.body.dataset.tables")
        if state:
            break
        time.sleep(0.1)
    assert state == "ready", f"tables: {state}; log: {driver.get_log('browser')}"


def _shot(driver, name: str, anchor: str) -> None:
    where = os.environ.get("EVALHARNESS_SCREENSHOTS")
    if not where:
        return
    driver.execute_script(f"document.getElementById('{anchor}').scrollIntoView()")
    time.sleep(1.0)  # lazy thumbnails
    driver.save_screenshot(str(Path(where) / f"{name}.png"))


def _wait_images(driver, selector: str) -> list[bool]:
    script = (f"return Array.from(document.querySelectorAll('{selector}'))"
              ".map(i => i.complete && i.naturalWidth > 0)")  # fmt: skip
    for _ in range(100):
        loaded = driver.execute_script(script)
        if loaded and all(loaded):
            return loaded
        time.sleep(0.1)
    return loaded


def _gallery_rows(driver) -> list[dict]:
    return driver.execute_script(
        """return Array.from(document.querySelectorAll('#eh-gallery tbody tr[data-sample]'))
           .map(tr => ({sample: tr.dataset.sample,
                        sides: Array.from(tr.querySelectorAll('img.eh-input'))
                                    .map(i => i.dataset.side)}))"""
    )


def _severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_classification_page_sorts_filters_and_shows_both_inputs(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, run = run_in_process(CLASSIFICATION, tmp_path / "cls")
    write_report(run, RunDirConfigs(run), {"resize": "pil_bilinear"}, n_boot=100,
                 a_over={"resize": "cv2_linear"})  # fmt: skip
    _open(browser, run / "report.html")
    page = browser.page_source
    assert "http://" not in page and "https://" not in page  # nothing from the network

    # sort the summary by top1, ascending: the first row is the lowest
    summary = browser.find_element(By.CSS_SELECTOR, "#summary table.eh-table")
    headers = [h.text for h in summary.find_elements(By.CSS_SELECTOR, "thead th")]
    col = headers.index("top1")
    summary.find_elements(By.CSS_SELECTOR, "thead th")[col].click()
    values = [float(r.find_elements(By.TAG_NAME, "td")[col].text)
              for r in summary.find_elements(By.CSS_SELECTOR, "tbody tr")]  # fmt: skip
    assert values == sorted(values) and values[0] < values[-1]

    # the gallery: filter by direction; every card shown has both inputs
    rows = _gallery_rows(browser)
    assert rows and all(r["sides"] == ["A", "B"] for r in rows)
    cards = browser.execute_script(
        "return JSON.parse(document.getElementById('eh-gallery-data').textContent).cards"
    )
    better = sum(c["direction"] == "wrong_to_right" for c in cards)
    assert 0 < better < len(cards) or better == len(cards) > 0
    Select(browser.find_element(By.ID, "eh-dir")).select_by_value("wrong_to_right")
    shown = browser.execute_script("return window.ehGallery.page.info().recordsDisplay")
    assert shown == better
    directions = browser.execute_script(
        "return Array.from(document.querySelectorAll('#eh-gallery .eh-dir'))"
        ".map(e => e.textContent)"
    )
    assert directions and set(directions) == {"wrong_to_right"}
    assert all(r["sides"] == ["A", "B"] for r in _gallery_rows(browser))
    Select(browser.find_element(By.ID, "eh-dir")).select_by_value("")
    loaded = _wait_images(browser, "#eh-gallery tbody tr:first-child img.eh-input")
    assert loaded == [True, True]
    _shot(browser, "report_classification", "flips")
    assert _severe(browser) == []


def test_detection_page_filters_by_class_and_draws_both_sides(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, run = run_in_process(DETECTION, tmp_path / "det")
    write_report(run, RunDirConfigs(run), {"resize": "squash"}, n_boot=100)
    _open(browser, run / "report.html")
    rows = _gallery_rows(browser)
    assert rows and all(r["sides"] == ["A", "B"] for r in rows)
    cls = Select(browser.find_element(By.ID, "eh-class"))
    name = cls.options[1].get_attribute("value")
    cls.select_by_value(name)
    labels = browser.execute_script(
        "return Array.from(document.querySelectorAll('#eh-gallery .eh-meta'))"
        ".map(e => e.textContent)"
    )
    assert labels and all(name in text for text in labels)
    loaded = _wait_images(browser, "#eh-gallery tbody tr:first-child img")
    assert len(loaded) >= 5 and all(loaded)  # 2 inputs, |A - B|, 2 drawings
    moved = browser.find_element(By.ID, "eh-moved")
    moved.send_keys("100")  # nothing moves that far: the gallery is empty
    assert _gallery_rows(browser) == []
    moved.clear()
    cls.select_by_value("")
    _shot(browser, "report_detection", "flips")
    assert _severe(browser) == []
