"""Image-to-image figures of ../shared/data/README.md pinned on the real models and sets:
Compact x4 on Set5 (PSNR_Y/SSIM_Y to 0.001, per image too), DnCNN-25 on Set12 (30.43 within
0.02), the ONNX export on onnxruntime within chaiNNer's tolerance, and 64 px tiles with
32 px of context bit-exact. About 40 s on 2 cores; skipped when ../shared is absent.

The full table (runtimes, bf16, ncnn, seams by overlap, DITN) is
benchmarks/image_to_image_figures.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evalharness.backends import export as bx
from evalharness.models.sizes import odd_size
from evalharness.models.spandrel_model import load_spandrel
from evalharness.tasks.image_to_image import export as ex
from evalharness.tasks.image_to_image import metrics as mt
from evalharness.tasks.image_to_image import tiling as tl

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA, MODELS = SHARED / "data" / "sr", SHARED / "models" / "sr"
README_SET5 = {
    "baby": 30.9846,
    "bird": 29.3560,
    "butterfly": 23.1528,
    "head": 31.0465,
    "woman": 26.6232,
}

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not DATA.exists() or not MODELS.exists(), reason=f"{SHARED} is absent"),
]


def read(path: Path, mode: str = "RGB") -> np.ndarray:
    return np.asarray(Image.open(path).convert(mode))


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def set5() -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [
        (n, read(DATA / "Set5" / "LRx4" / f"{n}.png"), read(DATA / "Set5" / "HR" / f"{n}.png"))
        for n in README_SET5
    ]


@pytest.fixture(scope="module")
def compact():
    model, info = load_spandrel(MODELS / "realesr-animevideov3.pth")
    return model, info, ex.torch_runner(model)


@pytest.fixture(scope="module")
def compact_outputs(compact, set5) -> list[np.ndarray]:
    return [compact[2](tl.as_batch(lr)) for _, lr, _ in set5]


def test_compact_x4_set5_reproduces_the_readme(compact, set5, compact_outputs):
    _, info, _ = compact
    assert (info.architecture, info.scale, info.sha256[:8]) == ("RealESRGAN Compact", 4, "4e1e09ba")
    scores = [
        mt.score_image(mt.output_to_image(out), hr, shave=info.scale)
        for out, (_, _, hr) in zip(compact_outputs, set5, strict=True)
    ]
    for (name, _, _), score in zip(set5, scores, strict=True):
        assert score.psnr_y == pytest.approx(README_SET5[name], abs=1e-3), name
    psnr_y = np.array([s.psnr_y for s in scores])
    mean, lo, hi = mt.mean_interval(psnr_y, mt.bootstrap_indices(len(psnr_y)))
    assert mean == pytest.approx(28.2326, abs=1e-3)
    assert np.mean([s.ssim_y for s in scores]) == pytest.approx(0.8268, abs=1e-3)
    assert lo < mean < hi


def test_compact_onnx_on_onnxruntime_is_within_chainners_tolerance(
    compact, set5, compact_outputs, tmp_path
):
    model, info, _ = compact
    path = bx.export_module_any_size(
        model, tmp_path / "compact.onnx", info.input_channels, "legacy"
    )
    runner = ex.guarded(ex.OrtRunner(path), info.scale, info.output_channels)
    odd = odd_size(info.size_multiple, info.size_minimum)
    assert ex.check_size(runner, compact[2], (odd, odd + 4), info.scale, 3).ok
    for out, (name, lr, _) in zip(compact_outputs, set5, strict=True):
        comp = mt.compare_to_reference(runner(tl.as_batch(lr)), out)
        assert comp.within_tol and comp.max_abs < 1e-5, (name, comp)


def test_64px_tiles_with_32px_context_are_bit_exact(compact, set5, compact_outputs):
    _, info, run = compact
    _, lr, _ = set5[0]  # baby: 128x128 LR, four tiles
    tiled = tl.run_tiled(run, tl.as_batch(lr), 64, 32, info.scale)
    assert np.array_equal(tiled, compact_outputs[0])


def test_dncnn_25_on_set12_reproduces_the_readme():
    """KAIR protocol: noise N(0, 25/255) from np.random.seed(0) per image, unclipped."""
    model, info = load_spandrel(MODELS / "dncnn_25.pth")
    assert (info.architecture, info.scale, info.input_channels) == ("DnCNN", 1, 1)
    run = ex.torch_runner(model)
    psnr = []
    for path in sorted((DATA / "Set12").glob("*.png")):
        clean = read(path, "L")
        out = run(mt.noisy_input(clean, 25, seed=0))
        psnr.append(mt.score_image(mt.output_to_image(out), clean, shave=0).psnr_y)
    assert len(psnr) == 12
    assert np.mean(psnr) == pytest.approx(30.4316, abs=0.02)
