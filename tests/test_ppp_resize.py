"""The OpenVINO PrePostProcessor resize as a `resize` value: planned only on openvino, the
variant carries it, the host sends the image unresampled, and the compiled model's outputs
match a host resize that does the same thing."""

import numpy as np
import pytest

from evalharness.backends.base import BACKENDS
from evalharness.config.plan import PlanError
from evalharness.preprocess.pipeline import run_pipeline

from .conftest import plan_of


def _specs(overrides):
    return plan_of(overrides).specs


def test_refused_on_other_backends_with_one_line():
    with pytest.raises(PlanError) as e:
        _specs(["resize=ov_ppp_linear", "backend=onnxruntime"])
    msg = str(e.value)
    assert "resize 'ov_ppp_linear' resamples inside the model: only on backend openvino" in msg
    assert len(msg.splitlines()) == 1


def test_refused_with_a_policy_that_is_not_a_resize_to_the_model_size():
    with pytest.raises(PlanError, match="crop policy 'limit_max' cannot"):
        _specs(["resize=ov_ppp_linear", "backend=openvino", "resize.crop=limit_max"])


def test_refused_with_int8_whose_calibration_needs_model_sized_host_tensors():
    with pytest.raises(PlanError, match="calibrates on host tensors of the model's size"):
        _specs(["resize=ov_ppp_linear", "backend=openvino", "precision=int8_ort"])


@pytest.mark.parametrize("norm", ["host", "ov_ppp"])
def test_the_variant_learns_its_resize_from_the_resize_value(norm):
    spec = _specs(["resize=ov_ppp_linear", "backend=openvino", f"norm={norm}"])[0]
    assert spec.factor_dict["resize"] == "ov_ppp_linear"
    assert spec.variant.option("ppp_resize") == "linear" and spec.variant.placement == norm
    host = _specs(["resize=cv2_linear", "backend=openvino", f"norm={norm}"])[0]
    assert host.variant.option("ppp_resize") is None  # a different model variant


def _logits(overrides, n=8):
    plan = plan_of([f"dataset.limit={n}", *overrides])
    spec = plan.specs[0]
    session = BACKENDS.get(spec.variant.backend)().load(spec.variant, plan.options.cache_dir)
    frames = [run_pipeline(spec.stages, s.path) for s in plan.dataset.samples]
    out = [next(iter(session.infer(f.pixels[None]).values()))[0] for f in frames]
    return np.stack(out), frames


@pytest.mark.parametrize("norm", ["host", "ov_ppp"])
def test_outputs_match_a_host_linear_resize_and_the_geometry_is_the_models(norm):
    """squash: the PPP resize (RESIZE_LINEAR) and cv2.INTER_LINEAR do the same resampling
    (the PPP keeps f32, the host rounds to uint8); centre crop: the host cuts the window and
    the model resizes it, a slightly different sampling grid than resize-then-crop."""
    for crop, tol, agree in (("squash", 0.01, 1.0), ("center", None, 0.85)):
        common = ["backend=openvino", f"norm={norm}", f"resize.crop={crop}"]
        ppp, frames = _logits(["resize=ov_ppp_linear", *common])
        host, host_frames = _logits(["resize=cv2_linear", *common])
        spread = float(np.ptp(host))
        if tol is not None:
            assert np.abs(ppp - host).max() <= tol * spread
        assert (ppp.argmax(1) == host.argmax(1)).mean() >= agree
        for f, h in zip(frames, host_frames, strict=True):
            assert f.geometry.out_hw == (64, 64) and f.pixels.shape[:2] != (64, 64)
            if crop == "squash":  # the whole image, scaled per axis: the host's geometry
                assert f.geometry == h.geometry
            else:  # the same window of the source, up to the rounding of the window edges
                a, b = f.geometry, h.geometry
                src = np.array([[0.0, 0.0], [64.0, 64.0]])
                assert np.abs(a.to_source(src) - b.to_source(src)).max() <= 1.0
