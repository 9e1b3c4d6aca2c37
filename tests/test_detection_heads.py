"""Detection heads and the common post-processing: grids, NanoDet's portrait layout, NMS."""

from __future__ import annotations

import numpy as np
import pytest

from evalharness.tasks.detection.heads import HEADS, grid_cells
from evalharness.tasks.detection.postprocess import PostSettings, select


def test_yolox_decode_follows_the_grid_formula():
    s = PostSettings(head="yolox", strides=(8, 16, 32))
    hw = (64, 96)  # non-square: 8x12 + 4x6 + 2x3 cells
    n = 8 * 12 + 4 * 6 + 2 * 3
    raw = np.zeros((1, n, 5 + 2), np.float32)
    k = 8 * 12 + 2 * 6 + 5  # stride 16, row 2, column 5
    raw[0, k, :4] = [0.25, 0.5, np.log(2.0), 0.0]
    raw[0, k, 4:] = [0.5, 0.2, 0.8]
    c = HEADS.get("yolox").decode({"raw": raw}, hw, s)
    cx, cy = (0.25 + 5) * 16, (0.5 + 2) * 16
    np.testing.assert_allclose(c.boxes[0, k], [cx - 16, cy - 8, cx + 16, cy + 8], rtol=1e-6)
    np.testing.assert_allclose(c.scores[0, k], [0.1, 0.4], rtol=1e-6)
    with pytest.raises(ValueError, match="a 64x64 input with strides"):
        HEADS.get("yolox").decode({"raw": raw}, (64, 64), s)


def _nanodet_outputs(hw, hit_stride, row, col, n_cls=80, reg_max=7):
    """Outputs with one confident cell whose distances are 2 bins on every side."""
    out = {}
    for st in (8, 16, 32):
        cells = (hw[0] // st) * (hw[1] // st)
        cls = np.zeros((1, cells, n_cls), np.float32)
        dis = np.full((1, cells, 4 * (reg_max + 1)), -20.0, np.float32)
        dis[..., 0 :: reg_max + 1] = 20.0  # bin 0: zero distance
        if st == hit_stride:
            k = row * (hw[1] // st) + col
            cls[0, k, 3] = 0.9
            d = dis[0, k].reshape(4, reg_max + 1)
            d[:] = -20.0
            d[:, 2] = 20.0  # every side 2 bins = 2 strides
        out[f"cls_{st}"], out[f"dis_{st}"] = cls, dis
    return out


def test_nanodet_portrait_input_keeps_rows_and_columns():
    """A 320 x 224 (h x w) input: 40 x 28 cells at stride 8, row-major. (ncnn's model_zoo
    computes 80 // 40 = 2 columns here and scrambles the boxes.)"""
    hw = (320, 224)
    s = PostSettings(head="nanodet", multi_label=True)
    out = _nanodet_outputs(hw, 8, row=30, col=5)
    c = HEADS.get("nanodet").decode(out, hw, s)
    boxes, scores, labels = select(c.boxes[0], c.scores[0], s)
    assert len(boxes) == 1 and labels[0] == 3 and scores[0] == pytest.approx(0.9)
    cx, cy = (5 + 0.5) * 8, (30 + 0.5) * 8
    np.testing.assert_allclose(boxes[0], [cx - 16, cy - 16, cx + 16, cy + 16], atol=1e-4)


def test_select_thresholds_then_nms_per_class_then_caps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]],
                     np.float32)  # fmt: skip
    scores = np.array([[0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.005, 0.0]], np.float32)
    s = PostSettings(head="yolox", score_thr=0.01, nms_iou=0.65)
    b, sc, lab = select(boxes, scores, s)
    # box 1 overlaps box 0 in the same class: suppressed; box 2 is another class: kept;
    # box 3 is under the threshold.
    np.testing.assert_array_equal(lab, [0, 1])
    np.testing.assert_allclose(sc, [0.9, 0.7])
    b, sc, lab = select(boxes, scores, PostSettings(head="yolox", max_det=1))
    assert len(sc) == 1 and sc[0] == pytest.approx(0.9)
    both = np.array([[0.9, 0.6]], np.float32)
    assert len(select(boxes[:1], both, PostSettings(head="yolox"))[1]) == 1
    assert len(select(boxes[:1], both, PostSettings(head="yolox", multi_label=True))[1]) == 2


def test_grid_cells_are_row_major_per_level():
    x, y, st = grid_cells((16, 32), (8, 16))
    assert list(zip(x[:5], y[:5], st[:5], strict=True)) == [(0, 0, 8), (1, 0, 8), (2, 0, 8),
                                                            (3, 0, 8), (0, 1, 8)]  # fmt: skip
    assert len(x) == 2 * 4 + 1 * 2 and st[-1] == 16
