"""The detection metric: pycocotools' per-image matches, re-accumulated in numpy, equal the
library's figures at the identity resample and on any resample of images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalharness.data.dataset import Sample
from evalharness.data.loaders.detection import BoxTarget
from evalharness.tasks.detection.coco import coco_stats, match_images
from evalharness.tasks.detection.postprocess import Detections, PostSettings
from evalharness.tasks.detection.task import Detection

N_CLASSES = 5


def _scene(rng: np.random.Generator, image_id: int, coarse: bool):
    """Random objects (some crowd) and detections: jittered hits, misses, duplicates, false
    positives. Scores on a grid: tied across images; `coarse` ties them within images too."""
    n = int(rng.integers(0, 7))
    xy = rng.uniform(0, 300, (n, 2))
    wh = rng.uniform(8, 120, (n, 2))
    labels = rng.integers(0, N_CLASSES - 1, n)  # the last class never has objects
    crowd = rng.random(n) < 0.1
    bbox = tuple(tuple(float(v) for v in (*p, *s)) for p, s in zip(xy, wh, strict=True))
    target = BoxTarget(image_id, bbox, tuple(int(v) for v in labels),
                       tuple(bool(c) for c in crowd), tuple(float(w * h) for w, h in wh),
                       tuple(range(1, n + 1)))  # fmt: skip
    boxes, scores, dlabels = [], [], []
    for k in range(n):
        for _ in range(int(rng.integers(0, 3))):  # 0-2 detections per object
            jitter = rng.normal(0, 0.12, 4) * np.r_[wh[k], wh[k]]
            x1, y1 = xy[k] + jitter[:2]
            x2, y2 = xy[k] + wh[k] + jitter[2:]
            boxes.append((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)))
            flip = rng.random() < 0.1  # the wrong class now and then
            dlabels.append(int(rng.integers(0, N_CLASSES)) if flip else int(labels[k]))
    for _ in range(int(rng.integers(0, 5))):  # false positives, the objectless class too
        x, y = rng.uniform(0, 300, 2)
        boxes.append((x, y, x + rng.uniform(5, 80), y + rng.uniform(5, 80)))
        dlabels.append(int(rng.integers(0, N_CLASSES)))
    if coarse:
        scores = np.round(rng.uniform(0.01, 1, len(boxes)), 1).astype(np.float32)
    else:
        grid = np.arange(1, 100, dtype=np.float32) / 100
        scores = rng.choice(grid, size=len(boxes), replace=False)
    order = np.argsort(-scores, kind="stable")
    b = np.asarray(boxes, np.float32).reshape(-1, 4)[order]
    dets = Detections(b, scores[order], np.asarray(dlabels, np.int64)[order])
    return target, dets


def _rows(targets, dets, batch: int = 7) -> pd.DataFrame:
    """Prediction rows as the task writes them, matched batch by batch as the loop does."""
    rows = []
    task = Detection(PostSettings(head="yolox"), N_CLASSES)
    for b in range(0, len(targets), batch):
        t, d = targets[b : b + batch], dets[b : b + batch]
        for i, (tt, dd, m) in enumerate(zip(t, d, match_images(t, d, N_CLASSES), strict=True)):
            sample = Sample(b + i, str(b + i), Path("none"), target=tt)
            rows.append(dict(sample_index=b + i, **task._row(sample, dd, m)))
    return pd.DataFrame(rows)


def _generated(coarse: bool):
    rng = np.random.default_rng(7)
    scenes = [_scene(rng, 10 + 3 * i, coarse) for i in range(60)]
    # One image with 120 detections of one class: COCO keeps 100 per image and class.
    t, _ = scenes[5]
    many = Detections(np.tile(np.array([[10, 10, 60, 60]], np.float32), (120, 1)),
                      np.linspace(0.9, 0.05, 120).astype(np.float32),
                      np.full(120, 1, np.int64))  # fmt: skip
    scenes[5] = (t, many)
    targets = [s[0] for s in scenes]
    dets = [s[1] for s in scenes]
    return targets, dets, _rows(targets, dets)


@pytest.fixture(scope="module")
def generated():
    """Scores tied across images, distinct within an image."""
    return _generated(coarse=False)


@pytest.fixture(scope="module", params=[False, True], ids=["ties_across", "ties_within"])
def any_ties(request):
    return _generated(coarse=request.param)


def test_identity_resample_equals_pycocotools(any_ties):
    targets, dets, rows = any_ties
    task = Detection()
    rec = task.records(rows, None)
    lib = coco_stats(targets, dets, N_CLASSES)
    ap = task.value(rec, np.arange(len(rows))[None])[0]
    assert abs(ap - lib[0] * 100) < 1e-7  # 1e-9 in COCO's fractions
    summary = task.summarize(rows, None, np.random.default_rng(0).integers(0, 60, (50, 60)))
    assert abs(summary["mAP"] - lib[0] * 100) < 1e-7
    assert abs(summary["mAP50"] - lib[1] * 100) < 1e-7
    assert 0 < lib[0] < lib[1] < 1  # a real mix of hits and misses


def test_any_resample_equals_pycocotools_on_the_drawn_images(generated):
    """A resample with repeats equals COCOeval on a set where every draw is its own image
    (numbered so that COCO's image order is the set's order, as the records keep it).
    Exact unless one image holds equal scores in one class (metric.py: tied blocks)."""
    targets, dets, rows = generated
    task = Detection()
    rec = task.records(rows, None)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, len(rows), (4, len(rows)))
    values = task.value(rec, idx)
    for b in range(len(idx)):
        draws = sorted(idx[b].tolist())
        copies: dict[int, int] = {}
        t_b, d_b = [], []
        for i in draws:
            copies[i] = copies.get(i, 0) + 1
            t = targets[i]
            t_b.append(BoxTarget(i * 1000 + copies[i], t.bbox, t.labels, t.iscrowd, t.area,
                                 t.ann_ids))  # fmt: skip
            d_b.append(dets[i])
        lib = coco_stats(t_b, d_b, N_CLASSES)
        assert abs(values[b] - lib[0] * 100) < 1e-7, b


def test_records_survive_the_store(generated, tmp_path):
    """List columns through Parquet (the task's schema) give the same records."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, _, rows = generated
    task = Detection()
    full = rows.assign(sample_id=rows.sample_index.astype(str), config_id="c",
                       error_stage=None, error=None)  # fmt: skip
    table = pa.Table.from_pandas(full[task.schema.names], schema=task.schema, preserve_index=False)
    pq.write_table(table, tmp_path / "p.parquet")
    back = pq.read_table(tmp_path / "p.parquet").to_pandas()
    a, b = task.records(rows, None), task.records(back, None)
    idx = np.random.default_rng(1).integers(0, len(rows), (20, len(rows)))
    np.testing.assert_array_equal(task.value(a, idx), task.value(b, idx))
    assert task.agree(a, b).all()


def _row(scores, tp, ignored, gt_match, gt_labels, gt_crowd=None):
    n = len(scores)
    return dict(boxes=[[0, 0, 1, 1]] * n, scores=scores, labels=[0] * n, tp=tp,
                ignored=ignored, gt_match=gt_match, gt_labels=gt_labels,
                gt_crowd=gt_crowd or [False] * len(gt_labels))  # fmt: skip


def test_image_scores_and_agreement_follow_their_definitions():
    task = Detection()
    a = pd.DataFrame([
        _row([0.9, 0.8, 0.2], [1, 0, 1], [0, 0, 0], [0, -1, 1], [0, 0]),  # 1 TP 1 FP (0.2 ignored)
        _row([0.9], [1023], [0], [1], [0, 0]),  # object 1 found, object 0 missed
        _row([0.5], [0], [1], [0], [0], [True]),  # a crowd match: neither TP nor FP
        _row([], [], [], [], []),  # nothing, rightly
    ])  # fmt: skip
    b = pd.DataFrame([
        _row([0.95, 0.7], [1, 0], [0, 0], [0, -1], [0, 0]),  # same match, same FP count
        _row([0.9], [1023], [0], [0], [0, 0]),  # the other object: a different match
        _row([], [], [], [], [0], [True]),
        _row([0.4], [0], [0], [-1], []),  # a false positive appears
    ])  # fmt: skip
    ra, rb = task.records(a, None), task.records(b, None)
    np.testing.assert_allclose(task.image_scores(ra), [2 / 4, 2 / 3, 1.0, 1.0])
    np.testing.assert_array_equal(task.agree(ra, rb), [True, False, True, False])
    np.testing.assert_allclose(task.image_scores(rb)[3], 0.0)


def test_postprocess_settings_are_checked_with_one_line():
    with pytest.raises(ValueError, match="without postprocess.head"):
        PostSettings.from_pairs("m", (("nms_iou", 0.5),))
    with pytest.raises(ValueError, match="did you mean 'nms_iou'"):
        PostSettings.from_pairs("m", (("head", "yolox"), ("nms_io", 0.5)))
    with pytest.raises(KeyError, match="unknown detection head 'yolo'"):
        PostSettings.from_pairs("m", (("head", "yolo"),))
    s = PostSettings.from_pairs("m", (("head", "nanodet"), ("strides", (8, 16))))
    assert s.strides == (8, 16) and Detection(s).roles[0] == "cls_8"
