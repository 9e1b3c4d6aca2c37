"""PSNR and SSIM as the SR and denoising papers compute them, and output-vs-reference checks.

Protocol (BasicSR's `calculate_psnr/ssim(test_y_channel=True)`, which reproduces MATLAB's):

- the model output is clipped to [0, 1] and rounded to 8 bits first (BasicSR `tensor2img`,
  KAIR `tensor2uint`): the paper's number is that of the saved image;
- Y of YCbCr, BT.601 studio swing (16-235), *not rounded*: Y = 16 + 65.481 R' + 128.553 G'
  + 24.966 B' with R', G', B' in [0, 1]. Rounding Y to 8 bits as MATLAB's uint8 path does
  costs 0.01-0.03 dB per Set5 image (measured on Compact x4: head 31.0465 -> 31.0175), so
  it is not what the published tables use;
- `shave` pixels are cropped at every border (= the scale for SR, 0 for denoising);
- SSIM: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, only the windows that fit
  inside the image ("valid"), averaged;
- a dataset's figure is the mean of the per-image values (not a pooled MSE), so the
  per-image values are the records: a bootstrap over images re-aggregates them.

A grey image (Set12) is its own Y: no colour transform, no offset.

Against a reference output (another runtime or precision of the same model) the comparison
is on the raw float outputs, the way Polygraphy and `numpy.testing.assert_allclose` compare
network outputs, except for PSNR vs the reference, which is on the delivered image (clipped
to [0, 1]: values outside it never reach the saved file).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import cv2
import numpy as np

# MATLAB rgb2ycbcr's luma row, for R, G, B in [0, 1]; Y lands in [16, 235].
Y_FROM_RGB = np.array([65.481, 128.553, 24.966])
Y_OFFSET = 16.0
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
# chaiNNer's tolerances for comparing model outputs in [0, 1].
CHAINNER_RTOL, CHAINNER_ATOL = 1e-3, 1e-5

ToleranceRule = Literal["numpy", "polygraphy"]


def output_to_image(out: np.ndarray) -> np.ndarray:
    """A model output in [0, 1], (1, C, H, W) or (C, H, W), as the 8-bit image a user saves
    (H, W, C; H, W for one channel): the paper protocol scores that image, not the floats."""
    chw = out[0] if out.ndim == 4 else out
    if chw.ndim != 3:
        raise ValueError(f"expected (1, C, H, W) or (C, H, W), got shape {out.shape}")
    # float32 like BasicSR's tensor2img and KAIR's tensor2uint: a float64 product rounds
    # differently at a few .5 boundaries (Compact x4 Set5 mean moves by 3e-6 dB).
    img = np.round(np.clip(chw.astype(np.float32), 0, 1) * np.float32(255)).astype(np.uint8)
    hwc = img.transpose(1, 2, 0)
    return hwc[..., 0] if hwc.shape[2] == 1 else hwc


def luma(img: np.ndarray) -> np.ndarray:
    """Y in the 0-255 scale as float64: BT.601 16-235 for RGB (H, W, 3), the image itself
    for grey (H, W) or (H, W, 1), since Set12-style grey images have no chroma to drop."""
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        return x
    if x.ndim == 3 and x.shape[2] == 1:
        return x[..., 0]
    if x.ndim == 3 and x.shape[2] == 3:
        # Elementwise, not `@`: a matmul's summation order depends on the memory layout,
        # and a transposed view of the same pixels then gave 334 dB instead of inf.
        r, g, b = (x[..., i] / 255.0 for i in range(3))
        return r * Y_FROM_RGB[0] + g * Y_FROM_RGB[1] + b * Y_FROM_RGB[2] + Y_OFFSET
    raise ValueError(f"expected an (H, W), (H, W, 1) or (H, W, 3) image, got {x.shape}")


def crop_border(img: np.ndarray, shave: int) -> np.ndarray:
    """The image without `shave` pixels at each border: SR papers drop them because the
    upscaler has no context there and the MATLAB bicubic LR is itself wrong at the border."""
    if shave < 0:
        raise ValueError(f"shave must be >= 0, got {shave}")
    return img[shave:-shave, shave:-shave] if shave else img


def psnr_from_mse(mse: np.ndarray | float, data_range: float = 255.0) -> np.ndarray | float:
    """PSNR in dB from a mean squared error (inf where it is 0: identical images)."""
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(data_range**2 / mse)
    return float(value) if value.ndim == 0 else value


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR of two same-shape arrays, computed in float64 (the mean of squared 8-bit
    differences overflows nothing there and does not lose the small ones)."""
    _same_shape(a, b)
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(psnr_from_mse(np.mean(diff * diff), data_range))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """SSIM of two single-channel images (Wang et al. 2004 with BasicSR's choices): the
    Gaussian-filtered statistics of the windows that lie wholly inside the image."""
    _same_shape(a, b)
    if a.ndim != 2:
        raise ValueError(f"ssim takes one channel (H, W), got {a.shape}")
    if min(a.shape) < SSIM_WINDOW:
        raise ValueError(f"image {a.shape} is smaller than the {SSIM_WINDOW}px SSIM window")
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _valid_gauss(x), _valid_gauss(y)
    var_x = _valid_gauss(x * x) - mu_x**2
    var_y = _valid_gauss(y * y) - mu_y**2
    cov = _valid_gauss(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def _valid_gauss(x: np.ndarray) -> np.ndarray:
    """Gaussian window mean at every position where the window fits (no border rule)."""
    k = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA)
    r = SSIM_WINDOW // 2
    return cv2.filter2D(x, -1, k @ k.T)[r:-r, r:-r]


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")


@dataclass(frozen=True)
class ImageScore:
    """One image's scores against its ground truth; `as_record` is what is stored per image
    so that a dataset figure and its bootstrap interval are re-aggregations, not re-runs."""

    psnr_y: float
    ssim_y: float
    psnr_rgb: float = float("nan")  # only when asked for: the papers' tables use Y

    def as_record(self) -> dict[str, float]:
        return asdict(self)


def score_image(pred: np.ndarray, target: np.ndarray, shave: int, rgb: bool = False) -> ImageScore:
    """PSNR_Y and SSIM_Y (and RGB PSNR when `rgb`) of an 8-bit prediction against its 8-bit
    ground truth, both (H, W, 3) or (H, W), after cropping `shave` pixels at each border."""
    if pred.dtype != np.uint8 or target.dtype != np.uint8:
        raise ValueError(
            f"score_image takes 8-bit images (output_to_image(out)), got {pred.dtype} and "
            f"{target.dtype}: the protocol scores the saved image"
        )
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {target.shape} differ")
    y_pred, y_true = crop_border(luma(pred), shave), crop_border(luma(target), shave)
    value_rgb = float("nan")
    if rgb:
        value_rgb = psnr(crop_border(pred, shave), crop_border(target, shave))
    return ImageScore(psnr(y_pred, y_true), ssim(y_pred, y_true), value_rgb)


def outside_tolerance(
    out: np.ndarray,
    ref: np.ndarray,
    rtol: float = CHAINNER_RTOL,
    atol: float = CHAINNER_ATOL,
    rule: ToleranceRule = "numpy",
) -> np.ndarray:
    """Per element: does `out` miss the reference `ref` by more than the tolerance?

    "numpy" (default): |out - ref| > atol + rtol * |ref|, the rule of `numpy.isclose` and
    of `assert_allclose(actual=out, desired=ref)`, the check chaiNNer's tolerances are
    quoted for. "polygraphy": Polygraphy's elementwise check fails an element only when it
    exceeds *both* tolerances, |d| > atol and |d| > rtol * |ref|, i.e. |d| > max(atol,
    rtol*|ref|): looser by up to a factor of two. Both measure relative error against the
    reference, not symmetrically. A NaN or infinite output element is always outside.
    """
    _same_shape(out, ref)
    o, r = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(o - r)
        if rule == "numpy":
            bad = diff > atol + rtol * np.abs(r)
        elif rule == "polygraphy":
            bad = (diff > atol) & (diff > rtol * np.abs(r))
        else:
            raise ValueError(f"unknown tolerance rule {rule!r} (numpy or polygraphy)")
    return bad | ~np.isfinite(diff)


@dataclass(frozen=True)
class RefComparison:
    """One image's output against the reference config's output for the same input.

    Stored per image: `mse` (of the clipped images, range 1) re-aggregates PSNR vs the
    reference; `n_outside`/`n_elements` the share outside the tolerance; `max_abs` the
    worst element (raw outputs)."""

    max_abs: float
    mse: float
    n_outside: int
    n_elements: int

    @property
    def psnr_ref(self) -> float:
        return float(psnr_from_mse(self.mse, 1.0))

    @property
    def outside_share(self) -> float:
        return self.n_outside / self.n_elements if self.n_elements else float("nan")

    @property
    def within_tol(self) -> bool:
        """The whole image passes the tolerance (what `assert_allclose` would say)."""
        return self.n_outside == 0

    def as_record(self) -> dict[str, float | int | bool]:
        return {
            "max_abs_ref": self.max_abs,
            "mse_ref": self.mse,
            "psnr_ref": self.psnr_ref,
            "n_outside": self.n_outside,
            "n_elements": self.n_elements,
            "outside_share": self.outside_share,
            "within_tol": self.within_tol,
        }


def compare_to_reference(
    out: np.ndarray,
    ref: np.ndarray,
    rtol: float = CHAINNER_RTOL,
    atol: float = CHAINNER_ATOL,
    rule: ToleranceRule = "numpy",
) -> RefComparison:
    """How far a runtime's float output is from the reference output of the same image."""
    if out.shape != ref.shape:
        raise ValueError(f"output {out.shape} and reference {ref.shape} differ in shape")
    o, r = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(o - r)
    max_abs = float(np.max(diff)) if np.all(np.isfinite(diff)) else float("inf")
    clipped = np.clip(np.nan_to_num(o, nan=0.0), 0.0, 1.0) - np.clip(r, 0.0, 1.0)
    bad = outside_tolerance(out, ref, rtol, atol, rule)
    return RefComparison(max_abs, float(np.mean(clipped**2)), int(bad.sum()), int(bad.size))


def reference_summary(
    max_abs: np.ndarray, mse: np.ndarray, n_outside: np.ndarray, n_elements: np.ndarray
) -> dict[str, float]:
    """Dataset view of per-image RefComparison records.

    `psnr_ref_worst` is the worst image (the README's "dB vs whole image" figures are
    that); `psnr_ref_pooled` pools every element; `outside_share` is the mean of the
    per-image shares (in [0, 1]); `within_tol` the share of images wholly within."""
    mse, n_out = np.asarray(mse, np.float64), np.asarray(n_outside, np.float64)
    n_el = np.asarray(n_elements, np.float64)
    return {
        "max_abs": float(np.max(max_abs)),
        "psnr_ref_worst": float(psnr_from_mse(np.max(mse), 1.0)),
        "psnr_ref_pooled": float(psnr_from_mse(np.sum(mse * n_el) / np.sum(n_el), 1.0)),
        "outside_share": float(np.mean(n_out / n_el)),
        "within_tol": float(np.mean(n_out == 0)),
    }


def bootstrap_indices(n: int, b: int = 2000, seed: int = 0) -> np.ndarray:
    """(b, n) resampled image indices; draw once and reuse for every config so intervals
    of differences between configs stay paired."""
    return np.random.default_rng(seed).integers(0, n, size=(b, n))


def mean_interval(
    per_image: np.ndarray, idx: np.ndarray, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, lo, hi): the papers' per-image mean and its percentile bootstrap interval
    over images, from stored per-image values and a shared index matrix."""
    values = np.asarray(per_image, dtype=np.float64)
    boot = values[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(boot, [tail, 100.0 - tail])
    return float(values.mean()), float(lo), float(hi)


def noisy_input(img: np.ndarray, sigma: float, seed: int = 0, clip: bool = False) -> np.ndarray:
    """The denoising test input, (1, 1, H, W) float32 for a grey (H, W) 8-bit image, made
    as DnCNN's authors do (KAIR main_test_dncnn.py): the image in [0, 1] as float32 plus
    Gaussian noise N(0, sigma/255) drawn in float64 by the legacy `np.random.seed(seed)`
    stream, *re-seeded for every image* and *not clipped* (the model was trained on
    unclipped noise). Measured on DnCNN-25 over Set12: 30.4316 dB unclipped (paper 30.44),
    30.3403 dB with `clip=True`; a stream seeded once for the set gives 30.4450."""
    if img.ndim != 2:
        raise ValueError(f"noisy_input takes one grey (H, W) image, got {img.shape}")
    x = img.astype(np.float32) / np.float32(255.0)
    x += np.random.RandomState(seed).normal(0.0, sigma / 255.0, x.shape)  # float32 +=
    if clip:
        np.clip(x, 0.0, 1.0, out=x)
    return x[None, None]


def image_record(
    out: np.ndarray,
    target: np.ndarray,
    shave: int,
    reference: np.ndarray | None = None,
    rgb: bool = False,
) -> dict[str, float | int | bool]:
    """One flat, storable row per image: the scores of the model output `out` against the
    8-bit ground truth and, for a config that is not the reference, the comparison with
    the reference config's output for the same input (what a Task's predict returns)."""
    record: dict[str, float | int | bool] = dict(
        score_image(output_to_image(out), target, shave, rgb).as_record()
    )
    if reference is not None:
        record.update(compare_to_reference(out, reference).as_record())
    return record
