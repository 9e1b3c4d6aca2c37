"""The image-to-image figures through the harness's own commands (the one engine, the
task, the configs users run): Compact x4 on Set5 on every fp32 runtime and OpenVINO's
default precision, the tile sweep's seam figures, the shared ncnn pair beside the .pth,
DITN at sizes that are not multiples of 8, DnCNN-25 on Set12. Skipped when ../shared is
absent; 4.5 minutes on 2 shared cores (DnCNN and DITN are most of it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalharness.backends.export import export_module_any_size
from evalharness.models.spandrel_model import load_spandrel

from .conftest import SHARED_DATA, run_in_process

MODELS = SHARED_DATA.parent / "models" / "sr"
COMPACT = MODELS / "realesr-animevideov3.pth"

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SHARED_DATA / "sr").exists() or not MODELS.exists(), reason="../shared is absent"
    ),
]


def sweep(factors: dict, impossible: str = "skip"):
    def edit(cfg):
        cfg["sweep"] = {"name": "t", "factors": factors, "exclude": [], "impossible": impossible}
        cfg["threads"] = 2

    return edit


def row(summary: pd.DataFrame, **factors) -> pd.Series:
    mask = np.ones(len(summary), bool)
    for k, v in factors.items():
        mask &= (summary[k].astype(str) == str(v)).to_numpy()
    assert mask.sum() == 1, factors
    return summary[mask].iloc[0]


def test_compact_set5_on_every_fp32_runtime_and_openvinos_default(tmp_path):
    summary, _ = run_in_process(
        ["model=spandrel_file", f"model.weights={COMPACT}", "dataset=sr_set5"],
        tmp_path / "run",
        sweep({"backend": ["torch", "onnxruntime", "openvino"], "precision": ["fp32", "default"]}),
    )
    for backend in ("torch", "onnxruntime", "openvino"):
        r = row(summary, backend=backend, precision="fp32")
        assert r.psnr_y == pytest.approx(28.2326, abs=1e-3)  # README: 28.2326 / 0.8268
        assert r.ssim_y == pytest.approx(0.8268, abs=1e-3)
        assert r.psnr_y_lo < r.psnr_y < r.psnr_y_hi
        assert r.agree_ref == 100 and r.tol_fail == 0 and r.max_abs_ref < 1e-5
    default = row(summary, backend="openvino", precision="default")
    assert default.precision_ran in ("bf16", "fp32", "fp16")  # what this CPU's plugin chose
    if default.precision_ran == "bf16":  # this project's CPU: -0.040 dB, 76% outside
        assert default.psnr_y - 28.2326 == pytest.approx(-0.040, abs=0.005)
        assert default.tol_fail > 50 and default.agree_ref == 0


def test_tile_sweep_reproduces_the_seam_figures(tmp_path):
    summary, _ = run_in_process(
        ["model=spandrel_file", f"model.weights={COMPACT}", "dataset=sr_set5", "+sweep=sr_tiles"],
        tmp_path / "run",
    )
    whole = row(summary, tile="none").psnr_y
    assert row(summary, tile="t64_o0").psnr_y - whole == pytest.approx(-0.103, abs=0.01)
    assert row(summary, tile="t64_o0").psnr_ref_worst == pytest.approx(38.4, abs=0.1)
    assert row(summary, tile="t64_o16").psnr_y - whole == pytest.approx(0.0, abs=0.01)
    assert row(summary, tile="t64_o16").psnr_ref_worst == pytest.approx(103.4, abs=0.1)
    o32 = row(summary, tile="t64_o32")
    assert o32.psnr_y == whole and o32.psnr_ref == np.inf and o32.agree_ref == 100


def test_the_ncnn_pair_beside_the_pth_reports_its_fp16_weights(tmp_path):
    summary, _ = run_in_process(
        [
            "model=spandrel_file",
            f"model.weights={COMPACT}",
            f"model.files.ncnn={MODELS / 'realesr-animevideov3-x4.param'}",
            "dataset=sr_set5",
        ],
        tmp_path / "run",
        sweep({"backend": ["torch", "ncnn"]}),
    )
    ncnn = row(summary, backend="ncnn")
    assert ncnn.precision_ran == "fp32 (fp16 weights)"
    assert ncnn.psnr_y == pytest.approx(28.2502, abs=1e-3)  # README: 28.2502, 64.1 dB
    assert ncnn.psnr_ref_worst == pytest.approx(64.1, abs=0.1) and ncnn.agree_ref == 0


def test_ditn_at_sizes_that_are_not_multiples_of_8_on_every_runtime(tmp_path):
    """An ONNX traced at 64x64 (as most conversions are) cannot take Set5 head (70x70) or
    woman (86x57): an error row naming both sizes on each runtime, never a PSNR; padded to
    the multiple it runs everywhere, with torch's own (reflect) padding's numbers."""
    module, _ = load_spandrel(MODELS / "DITN_Real_x4.pth")
    onnx = export_module_any_size(module, tmp_path / "ditn64.onnx", 3, "dynamo", (64, 64), 8)
    summary, run_dir = run_in_process(
        [
            "model=spandrel_file",
            f"model.weights={MODELS / 'DITN_Real_x4.pth'}",
            f"model.files.onnx={onnx}",
            "dataset=sr_set5",
        ],
        tmp_path / "run",
        sweep({"backend": ["torch", "onnxruntime", "openvino"], "tile.pad": ["none", "reflect"]}),
    )
    torch_ref = row(summary, backend="torch", pad="none")
    assert torch_ref.psnr_y == pytest.approx(32.0995, abs=1e-3)  # README: 32.0995
    errors = pd.read_csv(run_dir / "errors.csv")
    for backend in ("onnxruntime", "openvino"):
        bare = row(summary, backend=backend, pad="none")
        assert bare.n_errors == 2 and np.isnan(bare.psnr_y) and bare.agree_ref == 60
        padded = row(summary, backend=backend, pad="reflect")
        assert padded.n_errors == 0 and padded.agree_ref == 100
        assert padded.psnr_y == pytest.approx(torch_ref.psnr_y, abs=1e-4)
    head = errors[errors.sample_id == "LRx4/head.png"]
    assert len(head) == 2 and head.reason.str.contains("input 70x70").all()
    assert head.reason.str.contains("expected 280x280").all()
    assert row(summary, backend="torch", pad="reflect").psnr_ref == np.inf  # DITN pads so


def test_dncnn_25_on_set12(tmp_path):
    summary, _ = run_in_process(
        [
            "model=spandrel_file",
            f"model.weights={MODELS / 'dncnn_25.pth'}",
            "dataset=denoise_set12",
            "threads=2",
        ],  # fmt: skip
        tmp_path / "run",
    )
    assert summary.psnr_y.iloc[0] == pytest.approx(30.4316, abs=0.02)  # paper 30.44
