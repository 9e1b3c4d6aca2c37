"""Detection figures from ../shared/data/README.md, reproduced through the harness.

YOLOX-Nano on coco_mini_val2017: mAP 0.312, mAP50 0.494 (31.2 / 49.4 points here), within
0.005 (0.5 point) on ONNX Runtime and on OpenVINO. Skipped when ../shared/data is absent.
"""

import numpy as np
import pandas as pd
import pytest

from evalharness.data.dataset import load_dataset
from evalharness.tasks.base import get_task
from evalharness.tasks.detection.metric import ap_per_threshold

from .conftest import SHARED_DATA, run_in_process

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} is absent"),
]


@pytest.fixture(scope="module")
def yolox(tmp_path_factory):
    return run_in_process(
        ["model=yolox_nano", "dataset=coco_mini_val2017", "+sweep=yolox_reference"],
        tmp_path_factory.mktemp("yolox"),
    )


def test_yolox_nano_reproduces_the_readme_on_both_runtimes(yolox):
    summary, _ = yolox
    assert set(summary.backend) == {"onnxruntime", "openvino"}
    for row in summary.itertuples():
        print(f"{row.backend}: mAP {row.mAP:.2f} [{row.mAP_lo:.2f}, {row.mAP_hi:.2f}], "
              f"mAP50 {row.mAP50:.2f} [{row.mAP50_lo:.2f}, {row.mAP50_hi:.2f}]")  # fmt: skip
        assert abs(row.mAP - 31.2) <= 0.5 and abs(row.mAP50 - 49.4) <= 0.5, row.backend
        assert row.mAP_lo < row.mAP < row.mAP_hi and row.mAP50_lo < row.mAP50 < row.mAP50_hi
        assert row.n_errors == 0 and row.agree_ref >= 95


def test_numpy_accumulation_equals_pycocotools_on_coco(yolox):
    """The bootstrap's identity resample is the library's stats[0] / stats[1] to 1e-9."""
    summary, out = yolox
    task = get_task("detection")
    ds = load_dataset(run_config_dataset(out))
    preds = pd.read_parquet(out / "predictions.parquet")
    for cid, rows in preds.groupby("config_id"):
        rows = rows.sort_values("sample_index").reset_index(drop=True)
        lib = task.library_stats(rows, ds)
        ap = ap_per_threshold(task.records(rows, ds).acc, np.arange(len(rows))[None])[0]
        assert abs(ap.mean() - lib[0]) < 1e-9 and abs(ap[0] - lib[1]) < 1e-9, cid


def test_boxes_are_in_source_pixels(yolox):
    _, out = yolox
    preds = pd.read_parquet(out / "predictions.parquet", columns=["sample_id", "boxes"])
    ds = load_dataset(run_config_dataset(out))
    size = {s.sample_id: s.path for s in ds.samples}
    from PIL import Image

    row = preds.iloc[0]
    with Image.open(size[row.sample_id]) as im:
        w, h = im.size
    boxes = np.stack(row.boxes)
    assert boxes[:, 2].max() <= w and boxes[:, 3].max() <= h and boxes.min() >= 0
    assert boxes[:, 2].max() > 416 or boxes[:, 3].max() > 416  # not model (416) pixels


def test_nanodet_is_refused_on_a_backend_that_cannot_run_ncnn(tmp_path):
    with pytest.raises(Exception, match="a ncnn model cannot run on onnxruntime"):
        run_in_process(
            ["model=nanodet_m", "dataset=coco_mini_val2017", "backend=onnxruntime"], tmp_path / "s"
        )
    assert not (tmp_path / "s").exists()


def run_config_dataset(out):
    from omegaconf import OmegaConf

    return OmegaConf.load(out / "run_config.yaml").dataset


def test_nanodet_m_reproduces_the_readme(tmp_path):
    """NanoDet-m on ncnn with letterbox_multiple (the short side padded to a multiple of 32,
    as ncnn's example does): 28.83 / 47.49 against the README's 28.9 / 47.7."""
    from evalharness.backends.base import BACKENDS

    missing = BACKENDS.get("ncnn").capabilities.missing("ncnn")
    if missing:
        pytest.skip(missing)
    summary, _ = run_in_process(["model=nanodet_m", "dataset=coco_mini_val2017"], tmp_path / "r")
    row = summary.iloc[0]
    print(f"nanodet_m: mAP {row.mAP:.2f}, mAP50 {row.mAP50:.2f}")
    assert abs(row.mAP - 28.9) <= 0.5 and abs(row.mAP50 - 47.7) <= 0.5  # 0.005 of mAP
