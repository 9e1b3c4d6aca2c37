"""The image_to_image task through the one engine, on models and images the tests make
(tiny spandrel architectures saved as .pth, PNGs drawn here): planning, the tile factor and
its swept settings, the reference output handed to every config, error rows for outputs of
the wrong size, degradations, loaders, verify. Real models and Set5: test_image_to_image_real.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from evalharness.models.spandrel_model import load_spandrel
from evalharness.preprocess.degrade import DegradeSpec, degrade
from evalharness.preprocess.geometry import Frame, Geometry
from evalharness.tasks.base import get_task
from evalharness.tasks.image_to_image import metrics as mt
from evalharness.tasks.image_to_image import tiling as tl
from evalharness.tasks.image_to_image.session import ERROR, IMAGE, ImageSession, RunSettings

from .conftest import plan_of, run_in_process

HR_SIZES = [(24, 32), (20, 28), (26, 18)]  # (h, w), multiples of 2


def compact_file(path: Path, scale: int = 2) -> Path:
    """A tiny Real-ESRGAN Compact (4 3x3 convs: 4 px of receptive field each side)."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale)
    torch.save(net.state_dict(), path)
    return path


def draw(h: int, w: int, seed: int, grey: bool = False) -> np.ndarray:
    """Smooth shapes plus texture: something an upscaler can get right and wrong."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = 128 + 80 * np.sin(xx / 3.0 + seed) * np.cos(yy / 4.0)
    img = base[..., None] + rng.normal(0, 12, (h, w, 1 if grey else 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[..., 0] if grey else img


def paired_set(root: Path, scale: int = 2) -> Path:
    (root / "HR").mkdir(parents=True)
    (root / "LR").mkdir()
    for k, (h, w) in enumerate(HR_SIZES):
        hr = draw(h, w, k)
        Image.fromarray(hr).save(root / "HR" / f"img_{k}.png")
        lr = Image.fromarray(hr).resize((w // scale, h // scale), Image.Resampling.BICUBIC)
        lr.save(root / "LR" / f"img_{k}.png")
    return root


def torch_outputs(pth: Path, root: Path) -> dict[str, np.ndarray]:
    module, _ = load_spandrel(pth)
    out = {}
    for k in range(len(HR_SIZES)):
        lr = np.asarray(Image.open(root / "LR" / f"img_{k}.png").convert("RGB"))
        with torch.no_grad():
            out[f"img_{k}"] = module(torch.from_numpy(tl.as_batch(lr))).numpy()
    return out


def pairs_overrides(pth: Path, root: Path) -> list[str]:
    return [
        "model=spandrel_file",
        f"model.weights={pth}",
        "dataset=image_pairs",
        f"dataset.root={root}",
        "dataset.input=LR",
        "dataset.target=HR",
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("i2i")
    return compact_file(base / "compact_x2.pth"), paired_set(base / "set")


def test_runtimes_and_swept_tiles_against_the_reference_output(tiny, tmp_path):
    """torch and onnxruntime (the harness's any-size export), whole image and 8 px tiles
    with 0 and 8 px of context (the sweep's `tile.size`/`tile.overlap` settings)."""
    pth, root = tiny

    def sweep(cfg):
        cfg["sweep"] = {
            "name": "t",
            "factors": {
                "backend": ["torch", "onnxruntime"],
                "tile": ["none", "t64_o0"],
                "tile.size": [8],
                "tile.overlap": [0, 8],
            },
            "exclude": [{"backend": "onnxruntime", "tile": "t64_o0"}],
        }

    summary, run_dir = run_in_process(pairs_overrides(pth, root), tmp_path / "run", sweep)
    assert {"tile", "size", "overlap"} <= set(summary.columns)
    assert len(summary) == 4  # none on both runtimes, two tiled configs on torch
    ref = summary[summary.reference].iloc[0]
    outs = torch_outputs(pth, root)
    expected = [
        mt.score_image(
            mt.output_to_image(outs[f"img_{k}"]),
            np.asarray(Image.open(root / "HR" / f"img_{k}.png").convert("RGB")),
            2,
        )
        for k in range(len(HR_SIZES))
    ]
    assert ref.psnr_y == pytest.approx(np.mean([e.psnr_y for e in expected]), abs=1e-9)
    assert ref.ssim_y == pytest.approx(np.mean([e.ssim_y for e in expected]), abs=1e-9)
    assert ref.psnr_y_lo <= ref.psnr_y <= ref.psnr_y_hi
    assert ref.psnr_ref == np.inf and ref.agree_ref == 100 and ref.tol_fail == 0
    ort = summary[summary.backend == "onnxruntime"].iloc[0]
    assert ort.agree_ref == 100 and ort.max_abs_ref < 1e-5 and ort.n_errors == 0
    tiled = summary[summary["size"].astype(str) == "8"].set_index("overlap")
    assert tiled.loc["0"].tol_fail > 0 and tiled.loc["0"].psnr_ref < 80  # seams
    assert tiled.loc["8"].agree_ref == 100  # context beyond the receptive field
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    assert set(preds.out_h) == {h for h, _ in HR_SIZES}
    variants = (run_dir / "variants.json").read_text()
    assert "odd-size probe 37x41: ran" in variants and "tiles 8 px, overlap 0" in variants
    # the report's drawing hook: both outputs of one image, re-run on demand, and the
    # amplified difference with the seams of the 8 px tiles marked
    from evalharness.runner.ondemand import RunDirConfigs

    model = SimpleNamespace(name="m", scale=2, out_channels=3, postprocess=())
    source, task = RunDirConfigs(run_dir), get_task("image_to_image", model)
    config = {"backend": "torch", "tile": "t64_o0", "size": "8", "overlap": "0"}
    [mine] = source.outputs(config, ["LR/img_0.png"])
    [ref] = source.outputs({"backend": "torch", "tile": "none"}, ["LR/img_0.png"])
    np.testing.assert_array_equal(ref.outputs[IMAGE][None], outs["img_0"])
    v = task.views(mine.model_input, mine.outputs[IMAGE], ref.outputs[IMAGE], 8, 0)
    assert v.input.shape == v.output.shape == v.diff.shape == (24, 32, 3)
    assert v.seam_rows == (12,) and v.seam_cols == (16,) and v.gain >= 1
    assert (v.diff[12] == (255, 0, 0)).all()  # the seam line


class FakeSession:
    """A backend session whose model returns what the test says."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.input = _io("in")
        self.precision_ran, self.notes = "fp32", ()
        self.thread_safe, self.build_seconds = True, 0.0

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"out": self.fn(x)}


def _io(name: str):
    from evalharness.backends.base import IOInfo

    return IOInfo(name, (1, 3, None, None))


def nearest(x: np.ndarray, s: int = 2) -> np.ndarray:
    return x.repeat(s, axis=2).repeat(s, axis=3)


def test_wrong_size_nan_and_runtime_failures_are_error_rows_naming_the_sizes():
    settings = RunSettings(scale=2)

    def model(x):
        h = x.shape[2]
        if h == 5:
            return nearest(x)[:, :, :-2]  # a runtime returning the wrong size, silently
        if h == 6:
            return np.full_like(nearest(x), np.nan)
        if h == 7:
            raise RuntimeError("Reshape: cannot reshape 1x8x7x9 to 1x8x8x8")
        return nearest(x)

    session = ImageSession(FakeSession(model), settings)
    task = get_task("image_to_image")
    samples = [SimpleNamespace(target=None, sample_id=f"s{h}") for h in (4, 5, 6, 7)]
    rows = []
    for h, sample in zip((4, 5, 6, 7), samples, strict=True):
        out = session.infer(np.random.default_rng(h).random((1, 3, h, 9), dtype=np.float32))
        assert out[IMAGE].shape == (1, 3, 2 * h, 18)  # NaN where it failed
        rows += task.predict(out, [None], [sample], reference=[None])
    assert "error_stage" not in rows[0] and rows[0]["out_h"] == 8
    assert rows[1]["error_stage"] == "output"
    assert rows[1]["error"] == "output 8x18, expected 10x18 (scale 2 x input 5x9)"
    assert rows[2]["error_stage"] == "output" and "NaN" in rows[2]["error"]
    assert rows[3]["error_stage"] == "infer"
    assert "input 7x9 gave no output (expected 14x18)" in rows[3]["error"]
    assert "Reshape" in rows[3]["error"]
    assert all(np.isnan(r["psnr_y"]) for r in rows)


def test_padding_to_the_size_multiple_and_channels_for_a_grey_model():
    seen = []

    def model(x):
        seen.append(x.shape)
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise RuntimeError("needs multiples of 4")
        return nearest(x, 1)

    grey = RunSettings(scale=1, in_channels=1, out_channels=1, multiple=4, pad="reflect")
    session = ImageSession(FakeSession(model), grey)
    plane = np.random.default_rng(0).random((6, 9), dtype=np.float32)
    out = session.infer(np.repeat(plane[None, None], 3, axis=1))
    assert seen == [(1, 1, 8, 12)] and out[ERROR][0] == ""
    np.testing.assert_array_equal(out[IMAGE][0, 0], plane)  # channel 0 exactly, cropped back
    bare = ImageSession(FakeSession(model), RunSettings(scale=1, in_channels=1, out_channels=1))
    assert "needs multiples of 4" in bare.infer(np.zeros((1, 3, 6, 9), np.float32))[ERROR][0]
    with pytest.raises(ValueError, match="tile.pad"):
        RunSettings(pad="mirror")


def test_noise_degradation_is_kairs_input_and_downscale_is_modcrop_then_resize():
    grey = draw(19, 23, 1, grey=True)
    chw = np.repeat(tl.as_batch(grey)[0], 3, axis=0)  # decoded as RGB: three equal channels
    frame = Frame(chw, Geometry.identity((19, 23)))
    noisy = degrade(frame, DegradeSpec("noise", sigma=25, seed=0)).pixels
    kair = mt.noisy_input(grey, 25, seed=0)[0, 0]
    for c in range(3):
        np.testing.assert_array_equal(noisy[c], kair)
    hr = draw(19, 23, 2)
    small = degrade(
        Frame(tl.as_batch(hr)[0], Geometry.identity((19, 23))),
        DegradeSpec("downscale", scale=4, library="pil", interpolation="bicubic"),
    ).pixels
    pil = Image.fromarray(hr[:16, :20]).resize((5, 4), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(small, tl.as_batch(np.asarray(pil))[0])


def test_a_grey_denoiser_on_clean_images_with_seeded_noise(tmp_path):
    from spandrel.architectures.DnCNN import DnCNN

    torch.manual_seed(0)
    net = DnCNN(in_nc=1, out_nc=1, nc=8, nb=8, act_mode="R")  # spandrel needs >= 8 layers
    pth = tmp_path / "dncnn.pth"
    torch.save(net.state_dict(), pth)
    (tmp_path / "clean").mkdir()
    clean = [draw(20, 24, k, grey=True) for k in range(2)]
    for k, img in enumerate(clean):
        Image.fromarray(img).save(tmp_path / "clean" / f"{k:02d}.png")
    summary, _ = run_in_process(
        [
            "model=spandrel_file",
            f"model.weights={pth}",
            "dataset=denoise_set12",
            f"dataset.root={tmp_path / 'clean'}",
            "dataset.degradation.sigma=15",
        ],
        tmp_path / "run",
    )
    module, info = load_spandrel(pth)
    assert (info.scale, info.input_channels) == (1, 1)
    expected = []
    for img in clean:
        with torch.no_grad():
            out = module(torch.from_numpy(mt.noisy_input(img, 15, seed=0))).numpy()
        expected.append(mt.score_image(mt.output_to_image(out), img, 0).psnr_y)
    assert summary.psnr_y.iloc[0] == pytest.approx(np.mean(expected), abs=1e-9)


def test_loaders_pair_by_name_and_name_what_is_missing(tmp_path):
    from evalharness.data.dataset import load_dataset

    root = tmp_path / "set"
    (root / "HR").mkdir(parents=True)
    (root / "LR").mkdir()
    for name in ("a", "b"):
        Image.fromarray(draw(8, 8, 0)).save(root / "HR" / f"{name}.png")
    for name in ("a_x2", "c_x2"):
        Image.fromarray(draw(4, 4, 0)).save(root / "LR" / f"{name}.png")
    cfg = dict(name="p", kind="image_pairs", root=str(root), input="LR", target="HR",
               input_suffix="_x2")  # fmt: skip
    ds = load_dataset(cfg)
    assert [s.sample_id for s in ds.samples] == ["LR/a_x2.png", "LR/c_x2.png"]
    assert ds.samples[0].target.sample_id == "HR/a.png" and ds.samples[0].problem is None
    assert ds.samples[1].problem == "no target c.* in HR/ for input c_x2.png"
    first = ds.content_hash
    Image.fromarray(draw(8, 8, 5)).save(root / "HR" / "a.png")  # the target's content changes
    assert load_dataset(cfg).content_hash != first
    bad = dict(name="c", kind="image_clean", root=str(root), images="HR",
               degradation={"kind": "blur"})  # fmt: skip
    with pytest.raises(ValueError, match="degradation.kind must be one of"):
        load_dataset(bad)
    only = load_dataset(dict(name="i", kind="image_inputs", root=str(root), images="LR"))
    assert all(s.target is None for s in only.samples)


def test_inputs_without_targets_are_compared_with_the_reference_only(tiny, tmp_path):
    pth, root = tiny
    overrides = ["model=spandrel_file", f"model.weights={pth}", "dataset=image_inputs",
                 f"dataset.root={root}", "dataset.images=LR", "tile=t64_o0",
                 "tile.size=8"]  # fmt: skip
    summary, _ = run_in_process(overrides, tmp_path / "run")
    tiled = summary[~summary.reference].iloc[0]
    assert np.isnan(tiled.psnr_y) and tiled.n_errors == 0
    assert tiled.tol_fail > 0 and np.isfinite(tiled.psnr_ref) and tiled.agree_ref < 100


def test_generated_lr_refuses_a_resize_that_does_not_resample(tiny):
    pth, root = tiny
    overrides = ["model=spandrel_file", f"model.weights={pth}", "dataset=sr_set5_bicubic",
                 f"dataset.root={root}", "dataset.images=HR",
                 "dataset.degradation.scale=2"]  # fmt: skip
    plan = plan_of(overrides)
    ref = next(s for s in plan.specs if s.is_reference)
    assert ref.factor_dict["resize"] == "pil_bicubic"  # the dataset's reference resize
    assert ref.stages[-1].kind == "degrade"
    with pytest.raises(ValueError, match="not none"):
        plan_of([*overrides, "resize=none"])
    with pytest.raises(ValueError, match="x3 downscale; model 'spandrel_file' upscales x2"):
        plan_of([*overrides[:-1], "dataset.degradation.scale=3"])


def test_other_tasks_keep_their_factors_and_config_ids():
    """The tile factor belongs to image_to_image: a classification plan has no tile column,
    no tile variant option, and the config ids it had before the factor existed."""
    plan = plan_of(["+sweep=preproc_ablation"])
    assert "tile" not in plan.columns
    assert not any(k.startswith("tile.") for s in plan.specs for k, _ in s.variant.options)
    ids = sorted(s.config_id for s in plan.specs)
    assert ids[:3] == ["0d95edc38b37", "0dbd10de4b45", "104603d4e425"]  # as before issue 34
    with pytest.raises(ValueError, match="unknown sweep factor 'tile'"):
        plan_of([], lambda cfg: cfg.update(sweep={"factors": {"tile": ["t64_o0"]}}))


def test_verify_checks_image_models_of_every_size(tiny):
    from evalharness.checks.verify import verify

    pth, root = tiny
    report = verify(pairs_overrides(pth, root), 3, {"*": 1e-5}, {"*": 1e-3})
    fp32 = report.table[report.table.variant.str.contains("/fp32")]
    assert {"onnxruntime/fp32", "openvino/fp32"} <= set(fp32.variant)
    assert fp32.passed.all() and fp32.top1_agreement.isna().all()
    assert (fp32.max_abs < 1e-5).all()


def test_the_report_draws_the_output_image_and_describes_psnr():
    """Task.draw: the config's output as the saved 8-bit image (a grey model's in RGB);
    Task.describe: PSNR_Y, and the distance to the reference output when it was measured."""
    from evalharness.tasks.drawing import DrawInput, Overlay

    task = get_task("image_to_image")
    out = np.zeros((1, 12, 10), np.float32)
    out[0, :, 5:] = 1.0  # right half white, one channel
    source = np.zeros((6, 5, 3), np.uint8)
    (panel,) = task.draw(DrawInput(None, source, None, {IMAGE: out}))
    assert isinstance(panel, Overlay) and panel.image.shape == (12, 10, 3)
    assert panel.image[0, 9].tolist() == [255, 255, 255] and panel.image[0, 0].tolist() == [0] * 3
    assert "10x12" in panel.title
    assert task.draw(DrawInput(None, source, None, None)) == []
    said = task.describe({"psnr_y": 28.23261, "psnr_ref": 64.1})
    assert said.pred == "PSNR_Y 28.233 dB, 64.1 dB vs the reference output"
    assert task.describe({"psnr_y": None, "psnr_ref": None}).pred == "no target"
