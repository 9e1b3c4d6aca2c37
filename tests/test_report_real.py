"""The report on a real text-detection run: PP-OCRv6 on ICDAR 2015 images, the model card's
limit 736/min against 960/max (../shared/data). A flipped image's card shows, for both
configs, what the model saw, the probability map and the binarized map DB reads (from the
images re-run through each config's session) and the polygons on the source image."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from evalharness.report.build import write_report
from evalharness.runner.ondemand import RunDirConfigs

from .conftest import SHARED_DATA

ICDAR = SHARED_DATA / "icdar2015-test"
pytestmark = [
    pytest.mark.real_data,
    pytest.mark.slow,
    pytest.mark.skipif(not ICDAR.exists(), reason=f"{ICDAR} is absent"),
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("rapidocr", "shapely", "pyclipper")),
        reason="needs pip install 'evalharness[text]' and pip install --no-deps rapidocr==3.10.0",
    ),
]


def test_a_text_detection_card_shows_both_probability_maps_and_polygons(run_app):
    _, out = run_app(["model=ppocr_v6_det", "dataset=icdar2015_test", "dataset.limit=10",
                      "resize=limit_max", "resize.limit_side_len=960", "threads=2"])  # fmt: skip
    write_report(out, RunDirConfigs(out), n_boot=100)  # B: the worst config, 960/max here
    page = (out / "report.html").read_text()
    data = re.search(r'id="eh-gallery-data">(.*?)</script>', page, re.S).group(1)
    cards = json.loads(data.replace("<\\/", "</"))["cards"]
    assert cards, "no image flips between 736/min and 960/max on these 10 images"
    for card in cards:
        for side in ("a", "b"):
            titles = [p["title"] for p in card[side]["panels"]]
            assert titles[0].endswith(("polygon", "polygons"))
            assert titles[1:] == ["probability map", "binarized > 0.3"]
            for f in [card[side]["input"], *(p["file"] for p in card[side]["panels"])]:
                assert (out / f).stat().st_size > 0
        a_hw, b_hw = card["a"]["hw"], card["b"]["hw"]
        assert max(a_hw) != max(b_hw)  # two limit policies: two model resolutions
    assert any(c["pred_a"] != c["pred_b"] for c in cards)
