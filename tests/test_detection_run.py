"""The detection task end to end on the demo set: the demo detector through a resize x
backend sweep, the summary's mAP columns, the store's records, agreement and YOLO labels."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from evalharness.paths import PROJECT_ROOT
from evalharness.stats.paired import bootstrap_indices
from evalharness.tasks.base import get_task

from .conftest import run_in_process

DEMO = PROJECT_ROOT / "datasets" / "demo_det"
SWEEP = ["model=tiny_det", "dataset=demo_det", "+sweep=detection_demo"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return run_in_process(SWEEP, tmp_path_factory.mktemp("det"))


def _row(summary, backend, resize):
    return summary[(summary.backend == backend) & (summary.resize == resize)].iloc[0]


def test_summary_has_map_with_intervals(sweep):
    summary, _ = sweep
    assert len(summary) == 4 and summary.n_errors.sum() == 0
    for m in ("mAP", "mAP50"):
        assert (summary[f"{m}_lo"] <= summary[m]).all() and (summary[m] <= summary[f"{m}_hi"]).all()
        assert (summary[f"{m}_hi"] - summary[f"{m}_lo"] > 0.5).all()  # a real interval
    ref = summary[summary.reference].iloc[0]
    assert (ref.backend, ref.resize) == ("torch", "letterbox")
    assert ref.mAP > 40 and ref.mAP50 > ref.mAP  # a clearly non-trivial detector


def test_squash_costs_map_and_the_runtime_does_not(sweep):
    """The detector was trained on letterboxed inputs: squashing distorts every non-square
    image and mAP falls, with a paired interval that excludes zero. PyTorch and its ONNX
    export give the same detections."""
    summary, out = sweep
    task = get_task("detection")
    preds = pd.read_parquet(out / "predictions.parquet")
    rec = {
        cid: task.records(g.sort_values("sample_index").reset_index(drop=True), None)
        for cid, g in preds.groupby("config_id")
    }
    letter, squash = _row(summary, "torch", "letterbox"), _row(summary, "torch", "squash")
    idx = bootstrap_indices(len(rec[letter.config_id].f1), 300)
    diff = task.value(rec[letter.config_id], idx) - task.value(rec[squash.config_id], idx)
    lo, hi = np.quantile(diff, [0.025, 0.975])
    assert lo > 0, (letter.mAP, squash.mAP, lo, hi)
    for resize in ("letterbox", "squash"):
        ort = _row(summary, "onnxruntime", resize)
        assert abs(ort.mAP - _row(summary, "torch", resize).mAP) < 0.2
    assert _row(summary, "onnxruntime", "letterbox").agree_ref >= 95
    assert squash.agree_ref < 90


def test_predictions_store_boxes_in_source_pixels_and_match_records(sweep):
    summary, out = sweep
    preds = pd.read_parquet(out / "predictions.parquet")
    ann = json.loads((DEMO / "annotations.json").read_text())
    size = {f"images/{im['file_name']}": (im["width"], im["height"]) for im in ann["images"]}
    ref = summary[summary.reference].iloc[0].config_id
    rows = preds[preds.config_id == ref]
    hits = 0
    for r in rows.itertuples():
        n = len(r.scores)
        assert len(r.boxes) == len(r.labels) == len(r.tp) == len(r.ignored) == len(r.gt_match) == n
        assert list(r.scores) == sorted(r.scores, reverse=True)
        if n:
            b = np.stack(r.boxes)
            w, h = size[r.sample_id]
            assert b[:, [0, 2]].max() <= w and b[:, [1, 3]].max() <= h and b.min() >= 0
        hits += int(sum(t & 1 for t in r.tp))
    assert hits > 0.5 * sum(len(g) for g in rows.gt_labels)


def test_yolo_labels_give_the_same_map_as_coco(sweep, tmp_path):
    """The demo set written as YOLO labels (as ultralytics stores datasets) scores the same."""
    ann = json.loads((DEMO / "annotations.json").read_text())
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    keep = ann["images"][:80]
    for im in keep:
        shutil.copy(DEMO / "images" / im["file_name"], tmp_path / "images" / im["file_name"])
        w, h = im["width"], im["height"]
        lines = [
            f"{a['category_id'] - 1} {(a['bbox'][0] + a['bbox'][2] / 2) / w:.10f} "
            f"{(a['bbox'][1] + a['bbox'][3] / 2) / h:.10f} {a['bbox'][2] / w:.10f} "
            f"{a['bbox'][3] / h:.10f}"
            for a in ann["annotations"]
            if a["image_id"] == im["id"]
        ]
        (tmp_path / "labels" / im["file_name"].replace(".jpg", ".txt")).write_text("\n".join(lines))
    (tmp_path / "classes.txt").write_text("\n".join(c["name"] for c in ann["categories"]))
    common = ["model=tiny_det", "dataset.limit=80"]
    yolo, _ = run_in_process(
        [*common, "dataset=yolo", f"dataset.root={tmp_path}"], tmp_path / "run_yolo"
    )
    coco, _ = run_in_process([*common, "dataset=demo_det"], tmp_path / "run_coco")
    assert abs(yolo.mAP.iloc[0] - coco.mAP.iloc[0]) < 0.05
    assert abs(yolo.mAP50.iloc[0] - coco.mAP50.iloc[0]) < 0.05


def test_bgr_swaps_the_disks(tmp_path):
    """red_disk and blue_disk differ only in hue: feeding BGR confuses exactly those."""
    summary, out = run_in_process(
        ["model=tiny_det", "dataset=demo_det", "colour=bgr", "dataset.limit=120"], tmp_path / "r"
    )
    rgb = summary[summary.reference].iloc[0]
    bgr = summary[~summary.reference].iloc[0]
    assert bgr.mAP < rgb.mAP - 5, (rgb.mAP, bgr.mAP)


def test_a_model_without_a_head_is_refused_before_any_work(tmp_path):
    def headless(cfg):
        del cfg["model"]["postprocess"]["head"]

    with pytest.raises(ValueError, match="detection model without postprocess.head"):
        run_in_process(["model=tiny_det", "dataset=demo_det"], tmp_path / "r", headless)
    assert not (tmp_path / "r" / "predictions.parquet").exists()
    with pytest.raises(ValueError, match="is a detection model, dataset 'demo' is a class"):
        run_in_process(["model=tiny_det", "dataset=demo"], tmp_path / "s")
