"""Image-to-image core on generated data: the metric protocol on inputs with known answers,
tiling exactness with a net whose receptive field is smaller than the overlap, padding and
cropping, the shape guard, ONNX export at sizes the trace never saw, and safe loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from evalharness.backends import export as bx
from evalharness.models.sizes import odd_size
from evalharness.models.spandrel_model import load_spandrel, read_state_dict
from evalharness.tasks.image_to_image import export as ex
from evalharness.tasks.image_to_image import metrics as mt
from evalharness.tasks.image_to_image import tiling as tl

RNG = np.random.default_rng(0)


class TinyUpscaler(nn.Module):
    """Three 3x3 convs (receptive field 3 px each side) and a x2 pixel shuffle, in float64
    so that tile and whole-image runs are comparable to the last bit."""

    def __init__(self, pad_to: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 12, 3, padding=1),
            nn.PixelShuffle(2),
        )
        self.pad_to = pad_to

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.pad_to, (-w) % self.pad_to
        if pad_h or pad_w:  # DITN-style: pad itself, crop after (a branch on the size)
            x = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return self.body(x)[:, :, : 2 * h, : 2 * w]


def tiny_fn(model: nn.Module) -> tl.ModelFn:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x).double()).numpy()

    return run


def nearest_x2(x: np.ndarray) -> np.ndarray:
    return x.repeat(2, axis=2).repeat(2, axis=3)


# -- metrics ---------------------------------------------------------------------------


def test_luma_is_bt601_studio_swing_and_grey_is_itself():
    colours = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], dtype=np.uint8)
    y = mt.luma(colours)
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16.0 + 65.481], atol=1e-9)
    grey = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    np.testing.assert_array_equal(mt.luma(grey), grey.astype(np.float64))
    np.testing.assert_array_equal(mt.luma(grey[..., None]), grey.astype(np.float64))


def test_psnr_of_a_one_level_difference_and_of_identical_images():
    a = RNG.integers(0, 255, (16, 16), dtype=np.uint8)
    assert mt.psnr(a + 1, a) == pytest.approx(20 * np.log10(255.0), abs=1e-12)  # mse 1
    assert mt.psnr(a, a) == float("inf")
    assert mt.psnr_from_mse(0.01, 1.0) == pytest.approx(20.0)


def test_ssim_matches_the_formula_on_a_single_window():
    a = RNG.uniform(0, 255, (11, 11))
    b = np.clip(a + RNG.normal(0, 20, a.shape), 0, 255)
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    mx, my = (w * a).sum(), (w * b).sum()
    vx, vy = (w * a * a).sum() - mx**2, (w * b * b).sum() - my**2
    cov = (w * a * b).sum() - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    want = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert mt.ssim(a, b) == pytest.approx(want, rel=1e-9)
    assert mt.ssim(a, a) == pytest.approx(1.0)


def test_score_image_shaves_the_border_and_wants_8_bit_images():
    hr = RNG.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    sr = hr.copy()
    sr[:4] = 0  # only the shaved border differs
    sr[:, -4:] = 255
    assert mt.score_image(sr, hr, shave=4).psnr_y == float("inf")
    assert mt.score_image(sr, hr, shave=0).psnr_y < 30
    assert np.isnan(mt.score_image(sr, hr, 4).psnr_rgb)
    assert mt.score_image(sr, hr, 4, rgb=True).psnr_rgb == float("inf")
    with pytest.raises(ValueError, match="8-bit"):
        mt.score_image(sr.astype(np.float32), hr, 4)
    with pytest.raises(ValueError, match="differ"):
        mt.score_image(sr[:-1], hr, 4)


def test_output_to_image_clips_and_rounds_like_tensor2img():
    out = np.array([-0.2, 0.0, 0.5 / 255, 1.49 / 255, 1.0, 1.3], np.float32).reshape(1, 1, 1, 6)
    np.testing.assert_array_equal(mt.output_to_image(out), [[0, 0, 0, 1, 255, 255]])
    assert mt.output_to_image(np.zeros((1, 3, 4, 5), np.float32)).shape == (4, 5, 3)


def test_tolerance_rules_numpy_and_polygraphy_differ_where_they_should():
    ref = np.array([0.01, 0.01, 0.5, 0.5], np.float64)
    out = ref + np.array([1.5e-5, 2.5e-5, 4e-4, 6e-4])
    # numpy: |d| > 1e-5 + 1e-3|ref| (2e-5 at 0.01, 5.1e-4 at 0.5)
    np.testing.assert_array_equal(mt.outside_tolerance(out, ref), [False, True, False, True])
    # polygraphy: |d| > max(1e-5, 1e-3|ref|) (1e-5 at 0.01, 5e-4 at 0.5)
    polygraphy = mt.outside_tolerance(out, ref, rule="polygraphy")
    np.testing.assert_array_equal(polygraphy, [True, True, False, True])
    a, b = RNG.random(1000), RNG.random(1000)
    b2 = a + RNG.normal(0, 1e-3, 1000)
    for x in (b, b2):
        np.testing.assert_array_equal(mt.outside_tolerance(x, a), ~np.isclose(x, a, 1e-3, 1e-5))
    assert mt.outside_tolerance(np.array([np.nan, np.inf]), np.array([0.5, 0.5])).all()


def test_compare_to_reference_records_what_reaggregates():
    ref = RNG.random((1, 3, 8, 8)).astype(np.float32)
    same = mt.compare_to_reference(ref, ref)
    assert same.within_tol and same.max_abs == 0 and same.psnr_ref == float("inf")
    out = ref.copy()
    out[0, 0, 0, 0] += 0.1
    out[0, 1, 0, 0] = 1.5  # outside [0, 1]: counted raw, clipped for PSNR
    comp = mt.compare_to_reference(out, ref)
    assert comp.n_outside == 2 and comp.n_elements == ref.size and not comp.within_tol
    assert comp.max_abs == pytest.approx(max(0.1, 1.5 - ref[0, 1, 0, 0]), rel=1e-6)
    clipped_first = min(ref[0, 0, 0, 0] + 0.1, 1.0) - ref[0, 0, 0, 0]
    want_mse = (clipped_first**2 + (1 - ref[0, 1, 0, 0]) ** 2) / ref.size
    assert comp.mse == pytest.approx(want_mse, rel=1e-5)
    record = comp.as_record()
    assert set(record) >= {"max_abs_ref", "mse_ref", "psnr_ref", "n_outside", "within_tol"}
    with pytest.raises(ValueError, match="shape"):
        mt.compare_to_reference(ref[:, :, :4], ref)


def test_reference_summary_worst_pooled_and_shares():
    summary = mt.reference_summary(
        np.array([0.1, 0.0]), np.array([1e-4, 0.0]), np.array([5, 0]), np.array([100, 300])
    )
    assert summary["psnr_ref_worst"] == pytest.approx(40.0)
    assert summary["psnr_ref_pooled"] == pytest.approx(10 * np.log10(400 / 1e-2))
    assert summary["outside_share"] == pytest.approx(0.025)
    assert summary["within_tol"] == 0.5 and summary["max_abs"] == 0.1


def test_mean_interval_is_the_per_image_mean_with_a_bootstrap_interval():
    values = RNG.normal(30, 2, 50)
    idx = mt.bootstrap_indices(50, b=500, seed=1)
    mean, lo, hi = mt.mean_interval(values, idx)
    assert mean == pytest.approx(values.mean()) and lo < mean < hi
    assert mt.mean_interval(values, np.arange(50)[None])[0] == pytest.approx(values.mean())
    np.testing.assert_array_equal(idx, mt.bootstrap_indices(50, b=500, seed=1))


def test_noisy_input_is_kairs_protocol():
    clean = RNG.integers(0, 256, (9, 7), dtype=np.uint8)
    np.random.seed(0)  # what KAIR's main_test_dncnn.py does before every image
    want = clean.astype(np.float32) / 255
    want += np.random.normal(0, 25 / 255, want.shape)
    got = mt.noisy_input(clean, 25, seed=0)
    assert got.shape == (1, 1, 9, 7) and got.dtype == np.float32
    np.testing.assert_array_equal(got[0, 0], want)
    assert got.min() < 0 or got.max() > 1  # not clipped (at sigma 25, almost surely)
    clipped = mt.noisy_input(clean, 25, clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1


# -- tiling ----------------------------------------------------------------------------


def test_tile_grid_is_balanced_like_chainner_and_cores_partition_the_image():
    assert [t.core[:2] for t in tl.tile_grid(70, 10, 64, 0)] == [(0, 35), (35, 70)]
    assert [t.core[:2] for t in tl.tile_grid(72, 10, 64, 0)] == [(0, 36), (36, 72)]
    assert len(tl.tile_grid(57, 64, 64, 16)) == 1
    for h, w, size, overlap in [(70, 57, 64, 16), (129, 40, 32, 8), (10, 13, 3, 2)]:
        grid = tl.tile_grid(h, w, size, overlap)
        cover = np.zeros((h, w), int)
        for t in grid:
            y0, y1, x0, x1 = t.core
            cy0, cy1, cx0, cx1 = t.context
            cover[y0:y1, x0:x1] += 1
            assert y1 - y0 <= size and x1 - x0 <= size
            assert (cy0, cx0) == (max(0, y0 - overlap), max(0, x0 - overlap))
            assert (cy1, cx1) == (min(h, y1 + overlap), min(w, x1 + overlap))
        assert (cover == 1).all()
    assert tl.seams(tl.tile_grid(70, 70, 64, 16), scale=4) == ([140], [140])


def test_tiles_with_overlap_beyond_the_receptive_field_are_exact():
    model = TinyUpscaler().double().eval()
    fn = tiny_fn(model)
    x = RNG.random((1, 3, 45, 38)).astype(np.float32)
    whole = fn(x)
    np.testing.assert_allclose(tl.run_tiled(fn, x, 16, 3, 2), whole, rtol=0, atol=1e-12)
    seamed = tl.run_tiled(fn, x, 16, 0, 2)
    assert np.abs(seamed - whole).max() > 1e-3  # without context the seams show
    assert np.array_equal(tl.run_tiled(fn, x, 64, 0, 2), whole)  # one tile is the image


def test_run_tiled_guards_every_tile():
    with pytest.raises(ex.OutputCheckError, match="output 16x16, expected 32x32"):
        tl.run_tiled(nearest_x2, RNG.random((1, 3, 16, 16)).astype(np.float32), 8, 0, 4)


def test_pad_to_multiple_modes_and_the_reflect_limit():
    x = RNG.random((1, 2, 5, 6)).astype(np.float32)
    for mode, np_mode in (("reflect", "reflect"), ("replicate", "edge")):
        padded, amounts = tl.pad_to_multiple(x, 4, mode)
        assert amounts == (3, 2) and padded.shape == (1, 2, 8, 8)
        np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (0, 0), (0, 3), (0, 2)), np_mode))
    const, _ = tl.pad_to_multiple(x, 4, "constant", value=0.5)
    assert (const[:, :, 5:] == 0.5).all() and (const[:, :, :, 6:] == 0.5).all()
    small = RNG.random((1, 1, 3, 3)).astype(np.float32)
    far, amounts = tl.pad_to_multiple(small, 8, "reflect")  # needs 5 > size - 1 = 2
    assert amounts == (5, 5) and far.shape == (1, 1, 8, 8)
    np.testing.assert_array_equal(far[0, 0, :5, :5], np.pad(small[0, 0], (0, 2), "reflect"))
    assert (far[0, 0, 5:, :3] == far[0, 0, 4, :3]).all()  # the rest replicates
    assert tl.pad_amounts(5, 6, 4, minimum=16) == (11, 10)
    same, none = tl.pad_to_multiple(x, 1)
    assert same is x and none == (0, 0)


def test_padded_crops_back_and_reflect_equals_the_models_own_padding():
    x = RNG.random((1, 3, 13, 10)).astype(np.float32)
    for mode in ("reflect", "replicate", "constant"):
        np.testing.assert_array_equal(tl.padded(nearest_x2, 8, 2, mode)(x), nearest_x2(x))
    self_padding = tiny_fn(TinyUpscaler(pad_to=8).double().eval())
    plain = tiny_fn(TinyUpscaler(pad_to=1).double().eval())
    np.testing.assert_allclose(tl.padded(plain, 8, 2, "reflect")(x), self_padding(x), atol=1e-12)
    assert tl.crop_output(np.zeros((1, 3, 32, 32)), 13, 10, 2).shape == (1, 3, 26, 20)


def test_as_batch_layout():
    rgb = RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    batch = tl.as_batch(rgb)
    assert batch.shape == (1, 3, 4, 5) and batch.dtype == np.float32
    assert batch[0, 2, 1, 3] == np.float32(rgb[1, 3, 2]) / np.float32(255)
    assert tl.as_batch(rgb[..., 0]).shape == (1, 1, 4, 5)


# -- shape guard and export ------------------------------------------------------------


def test_check_output_names_both_sizes_and_non_finite_values():
    with pytest.raises(ex.OutputCheckError, match="output 288x288, expected 280x280"):
        ex.check_output(np.zeros((1, 3, 288, 288), np.float32), (70, 70), 4)
    bad = np.zeros((1, 3, 8, 8), np.float32)
    bad[0, 0, 0, :2] = [np.nan, np.inf]
    with pytest.raises(ex.OutputCheckError, match="1 NaN and 1 Inf"):
        ex.check_output(bad, (4, 4), 2)
    with pytest.raises(ex.OutputCheckError, match="channels"):
        ex.check_output(np.zeros((1, 1, 8, 8)), (4, 4), 2, channels=3)
    ex.check_output(np.zeros((1, 3, 8, 10)), (4, 5), 2, channels=3)
    with pytest.raises(ex.OutputCheckError, match="expected 20x20"):
        ex.guarded(nearest_x2, 4)(np.zeros((1, 3, 5, 5), np.float32))


def test_odd_size_is_divisible_by_nothing_declared():
    assert odd_size(8) == 37 and odd_size(1, minimum=64) == 67
    for multiple in (2, 4, 8, 16, 37):
        n = odd_size(multiple)
        assert n % multiple and n % 2


def test_check_size_reports_failures_instead_of_raising():
    ok = ex.check_size(nearest_x2, nearest_x2, (7, 9), 2, 3)
    assert ok.ok and ok.max_abs == 0
    wrong = ex.check_size(nearest_x2, nearest_x2, (7, 9), 4, 3)
    assert not wrong.ok and "output 14x18, expected 28x36" in wrong.detail

    def broken(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("Exception from infer.cpp:1:\n[CPU] Reshape node 'v' failed")

    failed = ex.check_size(broken, nearest_x2, (7, 9), 2, 3)
    assert not failed.ok and failed.detail == "RuntimeError: [CPU] Reshape node 'v' failed"


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> tuple[nn.Module, Path]:
    model = TinyUpscaler().eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return model, bx.export_module_any_size(model, path, 3, "legacy")


def test_legacy_export_runs_at_untraced_sizes_on_ort_and_openvino(tiny_onnx):
    model, path = tiny_onnx
    reference = tiny_fn(model.double())
    ort, ov = ex.OrtRunner(path), ex.OpenVinoRunner(path, "f32")
    assert ort.precision_ran == "fp32" and ov.precision_ran == "f32"
    assert set(ov.layer_precisions()) == {("Convolution", "f32")}
    for hw in ((odd_size(), 16), (8, 5)):
        for runner in (ort, ov):
            check = ex.check_size(runner, reference, hw, 2, 3)
            assert check.ok and check.max_abs < 1e-5, check


def test_fp16_onnx_keeps_float32_io_and_reports_what_ort_runs(tiny_onnx, tmp_path):
    _, path = tiny_onnx
    half = ex.OrtRunner(ex.fp16_onnx(path, tmp_path / "half.onnx"))
    x = RNG.random((1, 3, 11, 13)).astype(np.float32)
    out = half(x)
    assert out.dtype == np.float32 and out.shape == (1, 3, 22, 26)
    assert np.abs(out - ex.OrtRunner(path)(x)).max() < 1e-2
    assert half.precision_ran.startswith("fp32 (fp16 weights")  # measured: ORT CPU upcasts


def test_dynamo_export_traced_at_an_odd_size_keeps_the_models_padding(tmp_path):
    model = TinyUpscaler(pad_to=4).eval()
    path = bx.export_module_any_size(model, tmp_path / "pad.onnx", 3, "dynamo", multiple=4)
    reference = tiny_fn(model.double())
    runner = ex.OrtRunner(path)
    for hw in ((16, 16), (13, 10), (37, 41)):
        check = ex.check_size(runner, reference, hw, 2, 3)
        assert check.ok and check.max_abs < 1e-5, check


def test_ncnn_param_blobs_and_weight_storage(tmp_path):
    param = tmp_path / "m.param"
    param.write_text(
        "7767517\n4 5\nInput in0 0 1 data\nSplit sp 1 2 data a b\n"
        "Convolution c 1 1 a c1 0=3\nBinaryOp add 2 1 c1 b output\n"
    )
    assert ex.read_ncnn_blobs(param) == (["data"], ["output"])
    (tmp_path / "bad.param").write_text("nonsense\n")
    with pytest.raises(ValueError, match="7767517"):
        ex.read_ncnn_blobs(tmp_path / "bad.param")
    binf = tmp_path / "m.bin"
    binf.write_bytes(ex.NCNN_FP16_TAG.to_bytes(4, "little") + b"\0" * 8)
    assert ex.ncnn_weight_storage(binf) == "fp16"
    binf.write_bytes(b"\0" * 12)
    assert ex.ncnn_weight_storage(binf) == "fp32"


# -- loading ---------------------------------------------------------------------------


def _touch(path: str) -> None:
    Path(path).touch()


class _Payload:
    """Unpickling this would call _touch(marker): the side effect a loader must not run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_with_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"weight": _Payload(marker)}, f)
    torch_path = tmp_path / "evil_zip.pth"
    torch.save({"weight": _Payload(marker)}, torch_path)
    for p in (path, torch_path):
        with pytest.raises(ValueError, match="refused it without running"):
            load_spandrel(p)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_and_unknown_files_are_refused(tmp_path):
    scripted = tmp_path / "m.pt"
    torch.jit.script(nn.Conv2d(3, 3, 3)).save(str(scripted))
    with pytest.raises(ValueError, match="TorchScript"):
        read_state_dict(scripted)
    with pytest.raises(ValueError, match="unsupported"):
        read_state_dict(tmp_path / "m.onnx")


def test_load_spandrel_detects_a_compact_model_from_its_state_dict(tmp_path):
    from spandrel.architectures.Compact import Compact

    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)
    path = tmp_path / "compact.pth"
    torch.save(net.state_dict(), path)
    module, info = load_spandrel(path)
    assert not module.training
    assert (info.architecture, info.scale, info.input_channels) == ("RealESRGAN Compact", 2, 3)
    assert info.size_multiple == 1 and info.supports_fp16 and len(info.sha256) == 64
    with pytest.raises(AttributeError):
        info.scale = 4  # frozen
    x = torch.rand(1, 3, 5, 7)
    with torch.no_grad():
        assert torch.equal(module(x), net.eval()(x))


def test_image_record_is_one_flat_row():
    hr = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = tl.as_batch(hr)
    row = mt.image_record(out, hr, shave=2)
    assert row["psnr_y"] == float("inf") and "mse_ref" not in row
    row = mt.image_record(out, hr, shave=2, reference=out + 0.5)
    assert row["n_outside"] == out.size and row["within_tol"] is False
    assert all(isinstance(v, float | int | bool) for v in row.values())
