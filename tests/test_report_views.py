"""The report's pieces without a sweep: what the model saw, |A - B|, the tasks' drawings as
primitives, their thumbnails, and flips.csv's rows."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from evalharness.preprocess.colour import ColourSpec, HostNormSpec, apply_colour, host_normalize
from evalharness.preprocess.geometry import Frame, Geometry
from evalharness.preprocess.pipeline import Stage
from evalharness.report.views import Reading, difference, model_view
from evalharness.tasks.drawing import Bars, DrawInput, Heat, Overlay

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _spec(placement="host", order="rgb", mean=MEAN, std=STD):
    """The parts of a RunSpec the views read: its colour stage and its variant."""
    stages = (
        Stage("colour", ColourSpec(order)),
        Stage("normalize", HostNormSpec(placement, mean, std)),
    )
    variant = SimpleNamespace(placement=placement, mean=mean, std=std)
    return SimpleNamespace(stages=stages, variant=variant)


def _tensor(img: np.ndarray, spec) -> np.ndarray:
    frame = Frame(img, Geometry.identity(img.shape[:2]))
    frame = apply_colour(frame, spec.stages[0].spec)
    return host_normalize(frame, spec.stages[1].spec).pixels


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    img[..., 0] = 250  # a red image: a channel swap shows
    return img


@pytest.mark.parametrize("placement", ["host", "graph", "ov_ppp"])
def test_the_reference_config_reads_back_as_its_own_pixels(image, placement):
    spec = _spec(placement)
    view = model_view(_tensor(image, spec), spec, Reading.of(_spec()))
    assert np.abs(view.astype(int) - image).max() <= 1  # float32 rounding only


def test_a_bgr_config_on_an_rgb_model_looks_blue(image):
    view = model_view(_tensor(image, _spec(order="bgr")), _spec(order="bgr"), Reading.of(_spec()))
    assert (view[..., 2] == 250).all() and not (view[..., 0] == 250).all()


def test_a_bgr_model_reads_its_own_bgr_input_as_the_image(image):
    ref = _spec(order="bgr")  # PP-OCR and YOLOX are trained on BGR
    view = model_view(_tensor(image, ref), ref, Reading.of(ref))
    assert np.abs(view.astype(int) - image).max() <= 1


def test_the_wrong_mean_and_std_show_as_the_model_sees_them(image):
    wrong = _spec(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    view = model_view(_tensor(image, wrong), wrong, Reading.of(_spec()))
    assert np.abs(view.astype(int) - image).mean() > 10  # not the clean image


def test_difference_of_equal_framings_is_pixel_by_pixel(image):
    other = image.copy()
    other[3, 4] = (0, 0, 0)
    d = difference(image, other, None, None)
    assert not d.resampled and d.max == 250 and d.gain == 1
    assert d.magnitude[3, 4] == 250 and d.magnitude.sum() == 250
    same = difference(image, image, None, None)
    assert same.max == 0 and same.caption() == "identical inputs"
    small = image.copy()
    small[0, 0, 1] = np.uint8(int(small[0, 0, 1]) ^ 1)  # one level: amplified x128 -> x64 cap
    assert difference(image, small, None, None).gain == 64


def test_difference_of_two_framings_goes_through_the_geometries():
    src = np.zeros((20, 40, 3), np.uint8)
    src[:, 20:] = 200
    g_a = Geometry.identity((20, 40))  # A sees the source as it is
    g_b = Geometry.identity((20, 40)).then_resize((10, 20))  # B at half size
    b = src[::2, ::2]
    d = difference(src, b, g_a, g_b)
    assert d.resampled and not d.outside.any() and d.max == 0  # the same picture
    g_c = Geometry.identity((20, 40)).then_shift(5, 0, (20, 40))  # padded 5 px on the left
    c = np.zeros_like(src)
    c[:, 5:] = src[:, :35]
    dc = difference(src, c, g_a, g_c)
    assert dc.outside[:, 35:].all() and not dc.outside[:, :35].any() and dc.max == 0


def test_classification_draws_top5_from_the_rerun_logits_else_the_stored_row():
    from evalharness.tasks.classification import Classification

    task = Classification()
    sample = SimpleNamespace(label=2, target=None)
    logits = np.array([0.0, 1.0, 3.0, 2.0, -1.0, 0.5], np.float32)
    item = DrawInput(sample, np.zeros((4, 4, 3), np.uint8), None, {"logits": logits},
                     None, tuple("abcdef"))  # fmt: skip
    (bars,) = task.draw(item)
    assert isinstance(bars, Bars) and bars.labels == ("c", "d", "b", "f", "a")
    assert bars.marked[0] and not any(bars.marked[1:])
    assert abs(sum(bars.values) - 1) < 0.05 and bars.values[0] > bars.values[1]
    row = {"top5": [3, 2, 1, 0, 4], "top1_prob": 0.6}
    (stored,) = task.draw(DrawInput(sample, item.image, row, None, None, tuple("abcdef")))
    assert stored.values[0] == 0.6 and np.isnan(stored.values[1]) and stored.marked[1]
    d = task.describe({"pred": 3, "top1_prob": 0.6, "label_logit": 1.5, "label": 2}, "abcdef")
    assert (d.pred, d.score, d.level, d.truth) == ("d", 0.6, 1.5, "c")


def test_detection_draws_truth_and_the_boxes_agree_counts():
    from evalharness.tasks.detection.task import Detection

    target = SimpleNamespace(bbox=((1, 2, 10, 10),), labels=(0,), iscrowd=(False,))
    row = {"boxes": [[1, 2, 11, 12], [0, 0, 5, 5]], "scores": [0.9, 0.1], "labels": [0, 1],
           "gt_labels": [0]}  # fmt: skip
    item = DrawInput(SimpleNamespace(target=target), np.zeros((20, 20, 3), np.uint8), row,
                     classes=("cat", "dog"))  # fmt: skip
    (overlay,) = Detection().draw(item)
    truth = [s for s in overlay.shapes if s.truth]
    preds = [s for s in overlay.shapes if not s.truth]
    assert len(truth) == 1 and truth[0].points.tolist() == [[1, 2], [11, 12]]
    assert [s.text for s in preds] == ["cat 0.90"]  # the 0.1 box is below 0.3
    assert Detection().describe(row, ("cat", "dog")).pred == "1 box: cat 0.90"


def test_text_detection_draws_polygons_and_both_maps():
    from evalharness.tasks.text_detection.db import binarize
    from evalharness.tasks.text_detection.task import TextDetection

    task = TextDetection()
    prob = np.zeros((1, 32, 48), np.float32)
    prob[0, 8:20, 10:40] = 0.9
    target = SimpleNamespace(polygons=((10, 8, 40, 8, 40, 20, 10, 20),), dont_care=(False,))
    row = {"polygons": [[10, 8, 40, 8, 40, 20, 10, 20]], "scores": [0.9], "matched": 1,
           "n_gt_care": 1}  # fmt: skip
    item = DrawInput(SimpleNamespace(target=target), np.zeros((32, 48, 3), np.uint8), row,
                     {"prob_map": prob})  # fmt: skip
    overlay, heat, binary = task.draw(item)
    assert isinstance(overlay, Overlay) and len(overlay.shapes) == 2
    assert isinstance(heat, Heat) and heat.values.shape == (32, 48)
    assert np.array_equal(binary.values, binarize(prob[0], task.params))
    assert len(task.draw(DrawInput(item.sample, item.image, row))) == 1  # no outputs: no maps


def test_thumbnails_draw_truth_blue_and_output_red():
    from evalharness.report.thumbs import PRED, TRUTH, render
    from evalharness.tasks.drawing import Shape

    shapes = (Shape(np.array([[2, 2], [30, 30]]), True, box=True),
              Shape(np.array([[40, 5], [60, 5], [60, 25]]), False, "0.50"))  # fmt: skip
    img, lossless = render(Overlay(np.full((40, 80, 3), 255, np.uint8), shapes, "t"))
    assert not lossless
    assert (img == TRUTH).all(axis=-1).sum() > 50 and (img == PRED).all(axis=-1).sum() > 20
    bars, _ = render(Bars(("a", "b"), (0.7, float("nan")), (True, False), "top-5"))
    assert bars.shape[0] > 20
    heat, _ = render(Heat(np.eye(8), "binary"))
    assert heat.shape[:2] == (8, 8)


def _results(correct_by_config: dict[str, list[bool]], preds: dict[str, list[int]], ids):
    from evalharness.analysis.results import RunResults
    from evalharness.tasks.classification import Classification

    rows = []
    for cid, correct in correct_by_config.items():
        for i, (ok, p) in enumerate(zip(correct, preds[cid], strict=True)):
            rows.append(dict(sample_index=i, sample_id=ids[i], config_id=cid, label=1,
                             pred=p, correct1=ok, correct5=True, top5=[p, 1, 2, 3, 4],
                             label_logit=float(ok), top1_prob=0.5))  # fmt: skip
    frame = pd.DataFrame(rows)
    summary = pd.DataFrame({"config_id": list(correct_by_config), "resize": ["pil", "cv2"],
                            "top1": [0.0, 0.0]})  # fmt: skip
    return RunResults.from_frames(summary, frame, Classification()), frame


def test_pair_flips_one_row_per_flipped_image_with_both_configs_factors(tmp_path):
    from evalharness.analysis.flips import ConfigRef, compare_sides, pair_flips, rows_by_config

    ids = ["x0", "x1", "x2", "x3"]
    res, frame = _results({"a": [True, True, False, True], "b": [True, False, True, True]},
                          {"a": [1, 1, 0, 1], "b": [1, 3, 1, 1]}, ids)  # fmt: skip
    rows = rows_by_config(frame)
    a, b = ConfigRef(tmp_path, res, "a"), ConfigRef(tmp_path, res, "b")
    t = pair_flips(a, b, ("zero", "one", "two", "three"), rows["a"], rows["b"])
    assert t.sample_id.tolist() == ["x1", "x2"]
    assert t.direction.tolist() == ["right_to_wrong", "wrong_to_right"]
    assert t.pred_a.tolist() == ["one", "zero"] and t.pred_b.tolist() == ["three", "one"]
    assert t.label.tolist() == ["one", "one"] and t.moved.tolist() == [1.0, 1.0]
    assert {"a_resize", "b_resize", "a_config_id", "b_config_id"} <= set(t.columns)
    c = compare_sides(a, b, n_boot=200)
    assert (c.worse, c.better, c.n, c.delta, c.flipped) == (1, 1, 4, 0.0, ["x1", "x2"])
