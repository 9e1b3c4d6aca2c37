"""PP-OCRv6 det end to end on a tiny ICDAR-format set the test draws itself (no shared data):
real model from the rapidocr wheel, real DB, real protocol, a swept limit_side_len."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from .conftest import plan_of, run_in_process

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("rapidocr", "shapely", "pyclipper")),
    reason="needs pip install 'evalharness[text]' and pip install --no-deps rapidocr==3.10.0",
)

WORDS = ["HELLO", "WORLD", "TEXT", "EXIT", "OPEN", "STOP", "CAFE", "SALE"]
SIZES = [(200, 320), (240, 400), (180, 260)]  # (h, w): every image is resized differently


def draw_set(root) -> dict[str, list[tuple[int, int, int, int]]]:
    """Dark words on a light background, one per row, with their boxes as ICDAR ground truth
    (plus one '###' word); returns the boxes per image file."""
    import cv2

    (root / "images").mkdir(parents=True)
    (root / "gt").mkdir()
    boxes = {}
    for k, (h, w) in enumerate(SIZES, 1):
        rng = np.random.default_rng(k)
        img = np.full((h, w, 3), 235, np.uint8)
        lines, y, words = [], 30, []
        for i in range(3 if h >= 200 else 2):
            word = WORDS[(k + i) % len(WORDS)]
            (tw, th), base = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, 1.2, 2)
            x = int(rng.integers(10, w - tw - 10))
            cv2.putText(img, word, (x, y + th), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (20, 20, 20), 2,
                        cv2.LINE_AA)  # fmt: skip
            b = (x, y, x + tw, y + th + base // 2)
            words.append(b)
            label = "###" if (k, i) == (1, 2) else word
            lines.append(f"{b[0]},{b[1]},{b[2]},{b[1]},{b[2]},{b[3]},{b[0]},{b[3]},{label}")
            y += th + 40
        cv2.imwrite(str(root / "images" / f"img_{k}.png"), img)
        (root / "gt" / f"gt_img_{k}.txt").write_bytes(("\ufeff" + "\n".join(lines)).encode())
        boxes[f"images/img_{k}.png"] = words
    return boxes


def test_ppocr_v6_on_drawn_words_with_a_swept_limit(tmp_path):
    boxes = draw_set(tmp_path / "set")

    def sweep(cfg):
        cfg["sweep"] = {
            "name": "t",
            "factors": {"resize.limit_side_len": [320, 736]},
            "exclude": [],
        }

    overrides = [
        "model=ppocr_v6_det",
        "dataset=icdar2015_test",
        f"dataset.root={tmp_path / 'set'}",
        "dataset.images=images",
        "dataset.gt=gt",
    ]
    summary, out = run_in_process(overrides, tmp_path / "run", cfg_edit=sweep)
    assert sorted(summary.limit_side_len.astype(int)) == [320, 736]
    assert summary.set_index(summary.limit_side_len.astype(int)).reference.to_dict() == {
        320: False,
        736: True,
    }
    assert (summary.n == 3).all() and (summary.n_errors == 0).all()
    # 7 care words, drawn clearly: PP-OCRv6 finds most of them at either limit
    assert (summary.hmean > 60).all() and (summary.text_recall > 60).all()
    for col in ("text_precision", "text_recall", "hmean"):
        assert (summary[f"{col}_lo"] <= summary[col]).all()
        assert (summary[col] <= summary[f"{col}_hi"]).all()
    preds = pd.read_parquet(out / "predictions.parquet")
    assert preds.n_gt_care.groupby(preds.config_id).sum().eq(7).all()
    for _, row in preds.iterrows():
        h, w = SIZES[int(row.sample_id.split("_")[1].split(".")[0]) - 1]
        polys = np.array([list(p) for p in row.polygons]).reshape(-1, 4, 2)
        # source pixels: inside the image, not the 736-px model input
        assert polys[..., 0].max() <= w - 1 and polys[..., 1].max() <= h - 1
        # each matched polygon lies on its drawn word, in the image's own pixels
        for poly, g in zip(polys, row.det_match, strict=True):
            if g >= 0:
                x0, y0, x1, y1 = boxes[row.sample_id][g]
                centre = poly.mean(axis=0)
                assert x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1
    # the two limits see different pixel grids, yet find the words in the same place
    by = {c: g.set_index("sample_id") for c, g in preds.groupby("config_id")}
    a, b = by.values()
    for sid in a.index:
        pa_, pb_ = (np.array([list(p) for p in t.loc[sid, "polygons"]]) for t in (a, b))
        if len(pa_) == len(pb_) and len(pa_):
            centres = [np.sort(p.reshape(-1, 4, 2).mean(axis=1), axis=0) for p in (pa_, pb_)]
            assert np.abs(centres[0] - centres[1]).max() < 8


@pytest.mark.parametrize("model", ["ppocr_v6_det", "ppocr_v4_det"])
def test_limit_policy_and_side_from_the_command_line(model, tmp_path):
    if model == "ppocr_v4_det" and importlib.util.find_spec("rapidocr_onnxruntime") is None:
        pytest.skip("pip install --no-deps rapidocr-onnxruntime==1.4.4")
    draw_set(tmp_path / "set")  # a text-detection dataset for the plan to load
    overrides = [f"model={model}", "resize=limit_max", "resize.limit_side_len=960"]
    dataset = ["dataset=icdar2015_test", f"dataset.root={tmp_path / 'set'}",
               "dataset.images=images", "dataset.gt=gt"]  # fmt: skip
    specs = plan_of([*overrides, *dataset]).specs
    resize = {s.is_reference: s.stages[1].spec for s in specs}
    assert (resize[False].crop, resize[False].limit_side_len) == ("limit_max", 960)
    assert (resize[True].crop, resize[True].limit_side_len) == ("limit_min", 736)
    for spec in resize.values():
        assert (spec.library, spec.interpolation, spec.size, spec.multiple) == (
            "opencv", "bilinear", None, 32,
        )  # fmt: skip
    ref = next(s for s in specs if s.is_reference)
    assert ref.factor_dict["backend"] == "onnxruntime" and ref.factor_dict["colour"] == "bgr"
