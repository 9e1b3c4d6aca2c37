"""Every case study runs with its one command, here on a small subset (docs/cases.md)."""

import pytest

from evalharness import CONF_DIR

from .conftest import SHARED_DATA

CASES = sorted(p.stem for p in (CONF_DIR / "case").glob("*.yaml"))
NEEDS_SHARED = {"tract1524", "tract1524_cifar", "decoder_divergence"}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_case_runs_on_a_subset(case, run_app, request):
    if case in NEEDS_SHARED:
        request.applymarker(pytest.mark.real_data)
        if not SHARED_DATA.exists():
            pytest.skip(f"{SHARED_DATA} is absent")
        pytest.importorskip("efficientnet_lite_pytorch", reason="pip install -e '.[effnet]'")
    summary, out = run_app([f"+case={case}", "dataset.limit=16"])
    assert len(summary) >= 4 and (summary.n == 16).all()
    assert summary.top1.between(0, 100).all()
