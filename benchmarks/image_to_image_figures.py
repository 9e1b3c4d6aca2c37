"""Every figure of ../shared/data/README.md "Image-to-image", measured by this code and
printed next to the README's value, in one run (about 4 minutes on 2 cores).

    .venv/bin/python benchmarks/image_to_image_figures.py
    .venv/bin/python benchmarks/image_to_image_figures.py --only tiles runtimes

Sections: models (spandrel's view), quality (Compact, DITN, DnCNN against ground truth),
runtimes (Compact on onnxruntime, OpenVINO, fp16 ONNX, torch bf16/fp16, ncnn; each against
torch fp32 on the same images), tiles (seams of 64 px tiles by overlap), ditn_sizes (the
70x70 behaviour per exporter and runtime, through the shape guard) and padding (to DITN's
size multiple, by pad mode, and what it changes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
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
SET5 = ("baby", "bird", "butterfly", "head", "woman")
THREADS = 2
DNCNN_SIGMA, DNCNN_SEED = 25, 0
SECTIONS = ("models", "quality", "runtimes", "tiles", "ditn_sizes", "padding")
ModelFn = Callable[[np.ndarray], np.ndarray]


@contextmanager
def section(title: str) -> Iterator[None]:
    print(f"\n== {title}")
    start = time.perf_counter()
    yield
    print(f"   ({time.perf_counter() - start:.1f} s)")


def read(path: Path, mode: str = "RGB") -> np.ndarray:
    return np.asarray(Image.open(path).convert(mode))


def set5(lr_from: str = "matlab") -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, LR, HR) 8-bit RGB; LR from the MATLAB-bicubic files or PIL bicubic of HR."""
    out = []
    for name in SET5:
        hr = read(DATA / "Set5" / "HR" / f"{name}.png")
        if lr_from == "pil":
            h, w = hr.shape[:2]
            lr = np.asarray(Image.fromarray(hr).resize((w // 4, h // 4), Image.BICUBIC))
        else:
            lr = read(DATA / "Set5" / "LRx4" / f"{name}.png")
        out.append((name, lr, hr))
    return out


def outputs(fn: ModelFn, images: list) -> list[np.ndarray]:
    return [fn(tl.as_batch(lr)) for _, lr, _ in images]


def scores(outs: list[np.ndarray], images: list, shave: int) -> list[mt.ImageScore]:
    return [
        mt.score_image(mt.output_to_image(o), hr, shave)
        for o, (_, _, hr) in zip(outs, images, strict=True)
    ]


def mean_psnr(outs: list[np.ndarray], images: list, shave: int = 4) -> float:
    return float(np.mean([s.psnr_y for s in scores(outs, images, shave)]))


def vs_reference(outs: list[np.ndarray], refs: list[np.ndarray]) -> dict[str, float]:
    comps = [mt.compare_to_reference(o, r) for o, r in zip(outs, refs, strict=True)]
    summary = mt.reference_summary(
        np.array([c.max_abs for c in comps]),
        np.array([c.mse for c in comps]),
        np.array([c.n_outside for c in comps]),
        np.array([c.n_elements for c in comps]),
    )
    grey = [
        np.abs(mt.output_to_image(o).astype(int) - mt.output_to_image(r))
        for o, r in zip(outs, refs, strict=True)
    ]
    summary["max_grey"] = float(max(g.max() for g in grey))
    summary["bit_exact"] = float(all(np.array_equal(o, r) for o, r in zip(outs, refs, strict=True)))
    return summary


def show_models() -> None:
    for name in ("realesr-animevideov3.pth", "DITN_Real_x4.pth", "dncnn_25.pth"):
        _, info = load_spandrel(MODELS / name)
        print(
            f"   {name:26s} {info.architecture:20s} x{info.scale} in {info.input_channels} "
            f"out {info.output_channels} multiple {info.size_multiple} min {info.size_minimum} "
            f"fp16 {info.supports_fp16} bf16 {info.supports_bf16} params {info.parameters} "
            f"sha256 {info.sha256[:8]}"
        )


def show_quality() -> None:
    compact, _ = load_spandrel(MODELS / "realesr-animevideov3.pth")
    images = set5()
    per = scores(outputs(ex.torch_runner(compact), images), images, 4)
    readme = {
        "baby": 30.9846,
        "bird": 29.3560,
        "butterfly": 23.1528,
        "head": 31.0465,
        "woman": 26.6232,
    }
    for (name, _, _), s in zip(images, per, strict=True):
        print(f"   Compact {name:10s} PSNR_Y {s.psnr_y:.4f}  README {readme[name]:.4f}")
    psnr_y = np.array([s.psnr_y for s in per])
    mean, lo, hi = mt.mean_interval(psnr_y, mt.bootstrap_indices(len(psnr_y)))
    ssim_y = np.mean([s.ssim_y for s in per])
    print(
        f"   Compact Set5 PSNR_Y {mean:.4f} [{lo:.2f}, {hi:.2f}] SSIM_Y {ssim_y:.4f}  "
        "README 28.2326 / 0.8268"
    )
    pil = set5("pil")
    pil_psnr = mean_psnr(outputs(ex.torch_runner(compact), pil), pil)
    print(f"   Compact Set5, LR by PIL bicubic: {pil_psnr:.4f}  README 28.2319")
    ditn, _ = load_spandrel(MODELS / "DITN_Real_x4.pth")
    per = scores(outputs(ex.torch_runner(ditn), images), images, 4)
    print(
        f"   DITN Set5 PSNR_Y {np.mean([s.psnr_y for s in per]):.4f} SSIM_Y "
        f"{np.mean([s.ssim_y for s in per]):.4f}  README 32.0995 / 0.8940"
    )
    show_dncnn()


def show_dncnn() -> None:
    model, _ = load_spandrel(MODELS / "dncnn_25.pth")
    run = ex.torch_runner(model)
    denoised, noisy = [], []
    for path in sorted((DATA / "Set12").glob("*.png")):
        clean = read(path, "L")
        x = mt.noisy_input(clean, DNCNN_SIGMA, seed=DNCNN_SEED)
        denoised.append(mt.score_image(mt.output_to_image(run(x)), clean, 0).psnr_y)
        noisy.append(mt.psnr(mt.output_to_image(x), clean))
    mean, lo, hi = mt.mean_interval(np.array(denoised), mt.bootstrap_indices(len(denoised)))
    print(
        f"   DnCNN-25 Set12 sigma {DNCNN_SIGMA} (seed {DNCNN_SEED} per image, unclipped): "
        f"{mean:.4f} [{lo:.2f}, {hi:.2f}]  README 30.4316 (paper 30.44); noisy input "
        f"{np.mean(noisy):.2f}  README 20.37"
    )


def compact_runtimes(tmp: Path) -> list[tuple[str, str, ModelFn]]:
    """(name, precision that ran, model function) for every runtime the README lists."""
    compact, _ = load_spandrel(MODELS / "realesr-animevideov3.pth")
    onnx32 = bx.export_module_any_size(compact, tmp / "compact.onnx", 3, "legacy", opset=17)
    onnx16 = ex.fp16_onnx(onnx32, tmp / "compact_fp16.onnx")
    ort32, ort16 = ex.OrtRunner(onnx32, THREADS), ex.OrtRunner(onnx16, THREADS)
    rows = [("onnxruntime f32", ort32.precision_ran, ort32)]
    for label, hint in (
        ("OpenVINO hint f32", "f32"),
        ("OpenVINO default", None),
        ("OpenVINO hint f16", "f16"),
    ):
        runner = ex.OpenVinoRunner(onnx32, hint, THREADS)
        layers = ", ".join(f"{n} {k[0]} {k[1]}" for k, n in runner.layer_precisions().items())
        rows.append((label, f"{runner.precision_ran} ({layers})", runner))
    rows.append(("onnxruntime fp16 ONNX", ort16.precision_ran, ort16))
    rows.append(("torch bf16", "bf16", ex.torch_runner(compact, "bfloat16")))
    rows.append(("torch fp16", "fp16", ex.torch_runner(compact, "float16")))
    param, binf = MODELS / "realesr-animevideov3-x4.param", MODELS / "realesr-animevideov3-x4.bin"
    storage = ex.ncnn_weight_storage(binf)
    for fp16 in (True, False):
        runner = ex.NcnnRunner(param, binf, fp16=fp16, threads=THREADS)
        rows.append((f"ncnn fp16 options {'on' if fp16 else 'off'}", f"{storage} weights", runner))
    return rows


def show_runtimes() -> None:
    images = set5()
    compact, _ = load_spandrel(MODELS / "realesr-animevideov3.pth")
    refs = outputs(ex.torch_runner(compact), images)
    base = mean_psnr(refs, images)
    print(f"   torch fp32 (reference) PSNR_Y {base:.4f}")
    print(
        f"   {'runtime':26s} {'max|d|':>8s} {'dB worst':>8s} {'pooled':>7s} {'outside':>8s} "
        f"{'imgs ok':>7s} {'PSNR_Y':>8s} {'dPSNR_Y':>8s}  precision ran"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, precision, fn in compact_runtimes(Path(tmp)):
            start = time.perf_counter()
            outs = outputs(ex.guarded(fn, 4, 3), images)
            ref = vs_reference(outs, refs)
            value = mean_psnr(outs, images)
            print(
                f"   {name:26s} {ref['max_abs']:8.1e} {ref['psnr_ref_worst']:8.2f} "
                f"{ref['psnr_ref_pooled']:7.2f} {100 * ref['outside_share']:7.2f}% "
                f"{100 * ref['within_tol']:6.0f}% {value:8.4f} {value - base:+8.4f}  {precision} "
                f"[{time.perf_counter() - start:.1f} s]"
            )
    print(
        "   README: ORT 6e-7, OV f32 2e-6 (both within assert_allclose(1e-3, 1e-5)); OV "
        "default bf16 1.1e-2, 56.8 dB, 76% outside, -0.040; fp16 ONNX on ORT 1.4e-3, "
        "77.1 dB, 6% outside, +0.0002; torch bf16 54.9 dB, -0.027; ncnn 4e-3, 64.1 dB, "
        "PSNR_Y 28.2502 with fp16 options on or off"
    )


def show_tiles() -> None:
    images = set5()
    compact, _ = load_spandrel(MODELS / "realesr-animevideov3.pth")
    run = ex.torch_runner(compact)
    refs = outputs(run, images)
    base = mean_psnr(refs, images)
    print(
        "   64 LR px tiles, Compact x4, Set5; dB vs whole image: worst image (the README's "
        "figure) and pooled; outside: mean per-image share (numpy rule, 1e-3/1e-5)"
    )
    readme = {
        0: "-0.103 dB, 101 levels, 38.4 dB",
        8: "65.1 dB",
        16: "103.4 dB, 0.05% outside",
        32: "bit-exact",
    }
    for overlap in (0, 8, 16, 32):
        tiled = [tl.run_tiled(run, tl.as_batch(lr), 64, overlap, 4) for _, lr, _ in images]
        ref = vs_reference(tiled, refs)
        print(
            f"   overlap {overlap:2d}: dPSNR_Y {mean_psnr(tiled, images) - base:+.4f} "
            f"max {ref['max_grey']:3.0f} levels, {ref['psnr_ref_worst']:6.1f} dB worst, "
            f"{ref['psnr_ref_pooled']:6.1f} pooled, {100 * ref['outside_share']:.3f}% "
            f"outside, bit-exact {bool(ref['bit_exact'])}  README {readme[overlap]}"
        )
    grid = tl.tile_grid(70, 70, 64, 16)
    print(f"   grid for head (70x70): {[t.core for t in grid]}, seams at {tl.seams(grid, 4)}")


def ditn_exports(ditn, tmp: Path) -> dict[str, Path]:
    return {
        "legacy traced 64x64": bx.export_module_any_size(
            ditn, tmp / "l64.onnx", 3, "legacy", (64, 64)
        ),
        "dynamo traced 64x64": bx.export_module_any_size(
            ditn, tmp / "d64.onnx", 3, "dynamo", (64, 64)
        ),
        "dynamo traced odd": bx.export_module_any_size(
            ditn, tmp / "dodd.onnx", 3, "dynamo", multiple=8
        ),
    }


def show_ditn_sizes() -> None:
    ditn, info = load_spandrel(MODELS / "DITN_Real_x4.pth")
    reference = ex.torch_runner(ditn)
    odd = odd_size(info.size_multiple, info.size_minimum)
    sizes = [(64, 64), (72, 72), (70, 70), (odd, odd + 4)]
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in ditn_exports(ditn, Path(tmp)).items():
            for runtime, fn in (
                ("ORT", ex.OrtRunner(path, THREADS)),
                ("OV f32", ex.OpenVinoRunner(path, "f32", THREADS)),
            ):
                for hw in sizes:
                    check = ex.check_size(fn, reference, hw, 4, 3)
                    print(
                        f"   {label:20s} {runtime:6s} {hw[0]}x{hw[1]}: "
                        f"{'ok' if check.ok else 'FAIL'} {check.detail}"
                    )
    print(
        "   README: legacy bakes the traced size (OV silently 256x256 at other sizes); "
        "dynamo runs multiples of 8; at 70x70 ORT raises in a Reshape, OV returns 288x288"
    )


def show_padding() -> None:
    images = set5()
    ditn, info = load_spandrel(MODELS / "DITN_Real_x4.pth")
    torch_fn = ex.torch_runner(ditn)
    refs = outputs(torch_fn, images)  # DITN pads itself: reflect, bottom/right
    print(f"   DITN torch (its own reflect padding): PSNR_Y {mean_psnr(refs, images):.4f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = bx.export_module_any_size(ditn, Path(tmp) / "d64.onnx", 3, "dynamo", (64, 64))
        ort_fn = ex.OrtRunner(path, THREADS)
        cases = [("torch", mode, torch_fn) for mode in ("reflect", "replicate", "constant")]
        cases += [("ORT dynamo@64", mode, ort_fn) for mode in ("reflect", "replicate", "constant")]
        for runtime, mode, fn in cases:
            outs = outputs(tl.padded(fn, info.size_multiple, 4, mode), images)
            ref = vs_reference(outs, refs)
            print(
                f"   {runtime:14s} pad {mode:9s}: PSNR_Y {mean_psnr(outs, images):.4f}, vs torch "
                f"{ref['psnr_ref_worst']:6.1f} dB worst, max {ref['max_grey']:3.0f} levels, "
                f"{100 * ref['within_tol']:.0f}% images within tolerance"
            )
        try:
            outputs(ex.guarded(ort_fn, 4, 3), images)
        except ex.OutputCheckError as err:
            print(f"   ORT dynamo@64 unpadded: guard says {err}")
        except Exception as err:  # a runtime error is the finding
            print(f"   ORT dynamo@64 unpadded: {type(err).__name__}: {ex.error_reason(err)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = ap.parse_args()
    if not DATA.exists() or not MODELS.exists():
        print(f"{DATA} or {MODELS} is absent", file=sys.stderr)
        return 2
    torch.set_num_threads(THREADS)
    shows = {
        "models": show_models,
        "quality": show_quality,
        "runtimes": show_runtimes,
        "tiles": show_tiles,
        "ditn_sizes": show_ditn_sizes,
        "padding": show_padding,
    }
    start = time.perf_counter()
    for name in args.only:
        with section(name):
            shows[name]()
    print(f"\ntotal {time.perf_counter() - start:.0f} s on {THREADS} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
