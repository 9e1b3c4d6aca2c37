"""Text detection: the ICDAR 2015 protocol on hand-made polygons, resampling, DB against
rapidocr's, the limit policies' geometry, the ICDAR loader."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from evalharness.data.dataset import load_dataset
from evalharness.data.loaders.icdar import TextTarget, parse_gt
from evalharness.preprocess.errors import StageError
from evalharness.preprocess.resize import ResizeSpec, resize

shapely = pytest.importorskip("shapely", reason="pip install 'evalharness[text]'")
pytest.importorskip("pyclipper", reason="pip install 'evalharness[text]'")

from evalharness.tasks.text_detection.db import DBParams, boxes_from_map, detect  # noqa: E402
from evalharness.tasks.text_detection.protocol import (  # noqa: E402
    IGNORED,
    INVALID,
    UNMATCHED,
    match_image,
    rates,
)
from evalharness.tasks.text_detection.records import TextRecords  # noqa: E402
from evalharness.tasks.text_detection.task import TextDetection  # noqa: E402


def box(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def run(gt, dont_care, det):
    return match_image(
        np.array(gt, float).reshape(len(gt), 4, 2),
        np.array(dont_care, bool),
        np.array(det, float).reshape(len(det), 4, 2),
    )


# ---------------------------------------------------------------- the protocol, by hand


def test_exact_and_shifted_boxes():
    # word A matched exactly; word B: a box shifted by half its width, IoU 50/150 = 1/3, a
    # miss and a false alarm; word C: shifted by a tenth, IoU 90/110 = 0.818, a match.
    gt = [box(0, 0, 10, 10), box(20, 0, 30, 10), box(40, 0, 50, 10)]
    det = [box(0, 0, 10, 10), box(25, 0, 35, 10), box(41, 0, 51, 10)]
    m = run(gt, [False] * 3, det)
    assert (m.matched, m.n_gt_care, m.n_det_care) == (2, 3, 3)
    assert m.det_match.tolist() == [0, UNMATCHED, 2]
    assert m.det_iou == pytest.approx([1.0, 1 / 3, 90 / 110], abs=1e-6)
    p, r, f = rates(m.matched, m.n_gt_care, m.n_det_care)
    assert (p, r, f) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_iou_must_exceed_one_half():
    # IoU exactly 0.5 is not a match (the script's strict >): a 10x10 word, a 10x20 box on it
    m = run([box(0, 0, 10, 10)], [False], [box(0, 0, 10, 20)])
    assert m.det_iou[0] == pytest.approx(0.5) and m.matched == 0


def test_dont_care_word_and_detection_inside_it_are_not_counted():
    # word 0 '###'; det 0 is 80% inside it (ignored), det 1 40% inside it (a false alarm:
    # 0.4 is not > 0.5), det 2 matches the care word 1.
    gt = [box(0, 0, 10, 10), box(100, 0, 110, 10)]
    det = [box(2, 0, 12, 10), box(6, 0, 16, 10), box(100, 0, 110, 10)]
    m = run(gt, [True, False], det)
    assert m.det_match.tolist() == [IGNORED, UNMATCHED, 1]
    assert (m.matched, m.n_gt_care, m.n_det_care) == (1, 1, 2)


def test_a_detection_matching_a_dont_care_word_well_is_still_ignored():
    m = run([box(0, 0, 10, 10)], [True], [box(0, 0, 10, 10)])
    assert (m.matched, m.n_gt_care, m.n_det_care) == (0, 0, 0)
    assert m.det_match.tolist() == [IGNORED]


def test_one_to_one_first_detection_in_order_wins():
    # two overlapping detections on one word, both IoU > 0.5: the first in order matches
    # (not the better second one); the other is a false alarm.
    gt = [box(0, 0, 10, 10)]
    det = [box(0, 0, 10, 13), box(0, 0, 10, 11)]  # IoU 0.769, then 0.909
    m = run(gt, [False], det)
    assert m.det_match.tolist() == [0, UNMATCHED]
    assert (m.matched, m.n_gt_care, m.n_det_care) == (1, 1, 2)


def test_a_detection_covering_two_words_matches_at_most_one():
    # a line box over two adjacent words: IoU with each is 0.5 at best -> no match at all;
    # a box mostly on word 0 (IoU 0.6) matches word 0 only, word 1 is a miss.
    gt = [box(0, 0, 10, 10), box(10, 0, 20, 10)]
    m = run(gt, [False, False], [box(0, 0, 20, 10)])
    assert (m.matched, m.n_gt_care, m.n_det_care) == (0, 2, 1)
    m = run(gt, [False, False], [box(0, 0, 16, 10)])
    assert m.det_match.tolist() == [0] and (m.matched, m.n_gt_care, m.n_det_care) == (1, 2, 1)


def test_a_word_claimed_once_leaves_the_next_word_to_the_next_detection():
    # word 0 matches det 0; det 1 overlaps word 0 (IoU 0.82) and word 1 (IoU 0.67): word 0
    # is taken, so det 1 goes to word 1 -- greedy over words, then detections, in order.
    gt = [box(0, 0, 10, 10), box(2, 0, 12, 10)]
    det = [box(0, 0, 10, 10), box(1, 0, 11, 10)]
    m = run(gt, [False, False], det)
    assert m.det_match.tolist() == [0, 1] and m.matched == 2


def test_bowtie_detection_is_skipped_not_counted():
    bowtie = [(0, 0), (10, 10), (10, 0), (0, 10)]
    m = run([box(0, 0, 10, 10)], [False], [bowtie, box(0, 0, 10, 10)])
    assert m.det_match.tolist() == [INVALID, 0]
    assert (m.matched, m.n_gt_care, m.n_det_care) == (1, 1, 1)


def test_empty_images():
    assert (lambda m: (m.matched, m.n_gt_care, m.n_det_care))(run([], [], [])) == (0, 0, 0)
    m = run([], [], [box(0, 0, 5, 5)])
    assert (m.matched, m.n_gt_care, m.n_det_care) == (0, 0, 1)
    m = run([box(0, 0, 5, 5)], [False], [])
    assert (m.matched, m.n_gt_care, m.n_det_care) == (0, 1, 0)


def test_dataset_rates_sum_counts_over_images():
    # image 1: 1 of 2 words, 1 false alarm; image 2: 3 of 3, none; image 3: only false alarms
    p, r, f = rates(1 + 3 + 0, 2 + 3 + 0, 2 + 3 + 2)
    assert p == pytest.approx(4 / 7) and r == pytest.approx(4 / 5)
    assert f == pytest.approx(2 * (4 / 7) * (4 / 5) / (4 / 7 + 4 / 5))
    assert rates(0, 0, 0) == (0.0, 0.0, 0.0)  # the script's zero-denominator convention


def _naive(gt, dont_care, det):
    """The script's loops, written out with shapely objects: the reference for match_image."""
    from shapely.geometry import Polygon

    G, D = [Polygon(g) for g in gt], [Polygon(d) for d in det]
    ign = set()
    for j, d in enumerate(D):
        for i, g in enumerate(G):
            if dont_care[i] and d.area and g.intersection(d).area / d.area > 0.5:
                ign.add(j)
                break
    gm, dm, matched = set(), set(), 0
    for i, j in itertools.product(range(len(G)), range(len(D))):
        if i in gm or j in dm or dont_care[i] or j in ign:
            continue
        if G[i].intersection(D[j]).area / G[i].union(D[j]).area > 0.5:
            gm.add(i), dm.add(j)
            matched += 1
    return matched, sum(not c for c in dont_care), len(D) - len(ign)


def test_vectorized_matching_equals_the_scripts_loops_on_random_boxes():
    rng = np.random.default_rng(0)
    for _ in range(60):
        g, d = rng.integers(0, 6), rng.integers(0, 8)
        xy = rng.uniform(0, 40, size=(g + d, 2))
        wh = rng.uniform(4, 16, size=(g + d, 2))
        quads = [box(x, y, x + w, y + h) for (x, y), (w, h) in zip(xy, wh, strict=True)]
        dc = list(rng.random(g) < 0.3)
        m = run(quads[:g], dc, quads[g:])
        assert (m.matched, m.n_gt_care, m.n_det_care) == _naive(quads[:g], dc, quads[g:])


# ---------------------------------------------------------------- records and resampling


def _preds(rows):
    cols = ["matched", "n_gt_care", "n_det_care", "det_match"]
    return pd.DataFrame(rows, columns=cols)


def test_value_at_the_identity_resample_is_the_point_estimate():
    task = TextDetection()
    preds = _preds([(1, 2, 2, [0, -1]), (3, 3, 3, [0, 1, 2]), (0, 0, 2, [-1, -1]), (0, 4, 0, [])])
    rec = task.records(preds, None)
    idx = np.random.default_rng(1).integers(0, 4, size=(200, 4))
    s = task.summarize(preds, None, idx)
    p, r = 4 / 7, 4 / 9
    assert s["text_precision"] == pytest.approx(100 * p)
    assert s["text_recall"] == pytest.approx(100 * r)
    assert s["hmean"] == pytest.approx(100 * 2 * p * r / (p + r))
    assert task.point(rec) == pytest.approx(s["hmean"], abs=1e-12)
    assert task.value(rec, np.arange(4)[None, :])[0] == s["hmean"]
    assert s["hmean_lo"] <= s["hmean"] <= s["hmean_hi"]
    # a resample is a re-aggregation: image 1 twice and image 2 once
    assert task.value(rec, np.array([[1, 1, 2]]))[0] == pytest.approx(
        100 * 2 * (6 / 8) * 1 / (6 / 8 + 1)
    )


def test_image_f_and_agreement_definitions():
    a = TextRecords.from_predictions(
        _preds([(1, 2, 2, [0, -1]), (0, 0, 0, []), (0, 0, 1, [-1]), (1, 1, 1, [0, -2])])
    )
    assert a.image_f().tolist() == pytest.approx([0.5, 1.0, 0.0, 1.0])
    b = TextRecords.from_predictions(
        _preds([(1, 2, 2, [1, -1]), (0, 0, 0, [-2]), (0, 0, 1, [-1]), (1, 1, 2, [0, -1])])
    )
    # image 0: another word matched; 1: only an ignored detection more (same outcome);
    # 2: same; 3: the same word but one false alarm more
    assert TextDetection().agree(a, b).tolist() == [False, True, True, False]


# ---------------------------------------------------------------- DB post-processing


def _synthetic_map(h=96, w=160):
    """A probability map with two text-like kernels (one tilted) and low noise."""
    import cv2

    prob = np.full((h, w), 0.05, np.float32)
    prob[20:32, 10:70] = 0.9
    cv2.fillPoly(prob, [np.array([[90, 60], [150, 45], [152, 55], [92, 70]], np.int32)], 0.8)
    prob[80:82, 10:12] = 0.95  # too small: dropped by min_size
    return prob


def rapidocr_detect(prob: np.ndarray, src_hw: tuple[int, int], p: DBParams) -> np.ndarray:
    """PaddleOCR's inference output as rapidocr-onnxruntime computes it: DBPostProcess, then
    TextDetector.filter_tag_det_res (order, clip, drop thin boxes)."""
    utils = pytest.importorskip(
        "rapidocr_onnxruntime.ch_ppocr_det.utils",
        reason="pip install --no-deps rapidocr-onnxruntime==1.4.4",
    )
    from rapidocr_onnxruntime.ch_ppocr_det.text_detect import TextDetector

    post = utils.DBPostProcess(p.thresh, p.box_thresh, p.max_candidates, p.unclip_ratio,
                               p.score_mode, p.use_dilation)  # fmt: skip
    boxes, _ = post(prob[None, None], src_hw)
    if not len(boxes):
        return np.zeros((0, 4, 2), np.float32)
    return object.__new__(TextDetector).filter_tag_det_res(boxes, src_hw)


@pytest.mark.parametrize("src_hw", [(96, 160), (48, 80), (150, 230)])
@pytest.mark.parametrize(
    "p", [DBParams(), DBParams(score_mode="slow"), DBParams(use_dilation=False, unclip_ratio=2.0)]
)
def test_db_matches_rapidocr_on_a_synthetic_map(src_hw, p):
    from evalharness.preprocess.geometry import Geometry

    prob = _synthetic_map()  # the model's map of an image of src_hw, resized to 96 x 160
    ours = detect(prob, Geometry.identity(src_hw).then_resize(prob.shape), p)
    ref = rapidocr_detect(prob, src_hw, p)
    assert len(ours) == len(ref) == 2
    np.testing.assert_array_equal(ours.polygons, ref)


def test_db_boxes_reach_the_source_only_through_the_geometry():
    from evalharness.preprocess.geometry import Geometry

    prob = _synthetic_map()  # as if the model saw a 2x upscale of a 48x80 image
    geom = Geometry.identity((48, 80)).then_resize((96, 160))
    det = detect(prob, geom, DBParams())
    ours = boxes_from_map(prob, DBParams()).points
    np.testing.assert_allclose(det.polygons.min(axis=1), np.round(ours.min(axis=1) / 2), atol=1)
    assert det.polygons[..., 0].max() <= 79 and det.polygons[..., 1].max() <= 47
    # a map at a quarter of the input (a strided head) is one more resize in the geometry
    small = prob[::4, ::4]
    det4 = detect(small, Geometry.identity((96, 160)), DBParams(min_size=1))
    assert det4.polygons[..., 0].max() > 100  # scaled back up by 4, not left in map pixels


def test_unknown_postprocess_setting_is_named():
    with pytest.raises(ValueError, match="unknown DB post-processing setting.*box_threshold"):
        DBParams.from_settings({"box_threshold": 0.6}, "m")
    assert DBParams.from_settings({"use_dilation": False, "thresh": 0.2}).thresh == 0.2


# ---------------------------------------------------------------- limit policies' geometry


@pytest.mark.parametrize("crop", ["limit_min", "limit_max"])
@pytest.mark.parametrize("limit", [736, 960, 100])
@pytest.mark.parametrize("hw", [(720, 1280), (300, 201), (400, 1000)])
def test_limit_policy_geometry_round_trip(crop, limit, hw):
    spec = ResizeSpec("opencv", "bilinear", None, antialias=False, crop=crop, limit_side_len=limit)
    frame = resize(np.zeros((*hw, 3), np.uint8), spec)
    g = frame.geometry
    assert g.out_hw == frame.pixels.shape[:2] and all(s % 32 == 0 for s in g.out_hw)
    rng = np.random.default_rng(2)
    polys = rng.uniform([0, 0], [hw[1], hw[0]], size=(20, 4, 2))
    back = g.polygons_to_source(g.to_model(polys))
    assert np.abs(back - polys).max() < 0.5
    # a whole-pixel detection in model pixels lands within half a source pixel of its
    # exact pre-image (the only loss is PaddleOCR's rounding to whole pixels)
    model_pts = np.round(g.to_model(polys))
    src = g.polygons_to_source(model_pts, clip=False)
    assert np.abs(g.to_model(src) - model_pts).max() < 1e-9


def test_limit_max_rounding_to_zero_is_an_error_row():
    # 10 x 2000 under limit_max 960: 10 * 0.48 = 4 px, rounds to 0 rows. rapidocr's
    # DetPreProcess returns None there (no detections); here it is an error row that says so.
    spec = ResizeSpec("opencv", "bilinear", None, crop="limit_max", limit_side_len=960)
    img = np.zeros((10, 2000, 3), np.uint8)
    with pytest.raises(StageError, match="a side of 0 px"):
        resize(img, spec)
    utils = pytest.importorskip("rapidocr_onnxruntime.ch_ppocr_det.utils")
    assert utils.DetPreProcess(960, "max").resize(img) is None


# ---------------------------------------------------------------- the ICDAR 2015 loader


def test_gt_parsing_bom_commas_and_dont_care(tmp_path):
    text = "\ufeff1,2,3,4,5,6,7,8,Hello\n10,20,30,20,30,40,10,40,###\n\n1,1,9,1,9,9,1,9,a,b\n"
    (tmp_path / "imgs").mkdir()
    (tmp_path / "gt").mkdir()
    for k in (10, 2, 1):
        (tmp_path / "imgs" / f"img_{k}.jpg").write_bytes(b"")
    (tmp_path / "gt" / "gt_img_1.txt").write_bytes(text.encode("utf-8"))
    (tmp_path / "gt" / "gt_img_2.txt").write_text("")
    (tmp_path / "gt" / "gt_img_10.txt").write_text("1,2,3,x,5,6,7,8,bad\n")
    cfg = OmegaConf.create(
        dict(name="t", kind="icdar2015", root=str(tmp_path), images="imgs", gt="gt", limit=None)
    )
    ds = load_dataset(cfg)
    assert ds.task == "text_detection"
    assert [s.sample_id for s in ds.samples] == [
        "imgs/img_1.jpg",
        "imgs/img_2.jpg",
        "imgs/img_10.jpg",
    ]
    t = ds.samples[0].target
    assert t.dont_care == (False, True, False) and t.n_care == 2
    assert t.polygons[0] == (1, 2, 3, 4, 5, 6, 7, 8)
    assert ds.samples[1].target == TextTarget((), ()) and ds.samples[1].problem is None
    assert "gt_img_10.txt line 1" in ds.samples[2].problem
    assert parse_gt("1,2,3,4,5,6,7,8,x,y", "f").dont_care == (False,)


@pytest.mark.parametrize("limit_type", ["min", "max"])
@pytest.mark.parametrize("limit", [736, 960])
@pytest.mark.parametrize("hw", [(720, 1280), (301, 457), (1000, 999), (100, 300)])
def test_limit_policy_is_rapidocrs_resize_bit_for_bit(limit_type, limit, hw):
    utils = pytest.importorskip(
        "rapidocr_onnxruntime.ch_ppocr_det.utils",
        reason="pip install --no-deps rapidocr-onnxruntime==1.4.4",
    )
    img = np.random.default_rng(sum(hw)).integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    ref = utils.DetPreProcess(limit, limit_type).resize(img)
    spec = ResizeSpec("opencv", "bilinear", None, antialias=False, crop=f"limit_{limit_type}",
                      limit_side_len=limit)  # fmt: skip
    np.testing.assert_array_equal(resize(img, spec).pixels, ref)
