"""The deployment resizes (ncnn, kornia-rs, cykooz = the Rust `image` crate's filters, the
OpenVINO PrePostProcessor resize) against hand-computed results and other libraries, and the
geometry each one records, checked against the pixels it really produced."""

import cv2
import numpy as np
import pytest
from PIL import Image

from evalharness.preprocess.resize import RESIZERS, ResizeSpec, resize, resized_hw

# The 4x4 ramp of tests/test_resize.py: first row [0, 40, 80, 120], to 2x2. By definition:
# - nearest at pixel centres, src = floor((dst + .5) * 2): [40, 120] (kornia-rs, like Pillow)
# - bilinear without antialias samples halfway between two pixels: [20, 100]
# - a convolution filter widened by the scale 2 (image crate / Pillow): output pixel i is
#   centred at source x = (i + .5) * 2; weights k((x_j - x) / 2) over the source centres x_j,
#   normalised. Worked out: triangle [28.57, 91.43], lanczos3 [21.53, 98.47], catmull-rom
#   [23.47, 96.53], mitchell (B = C = 1/3) [27.25, 92.75], gaussian (sigma .5, support 3)
#   [31.19, 88.81]; box (support .5 x 2) averages pairs: [20, 100].
RAMP = np.tile(np.array([0, 40, 80, 120], np.uint8)[None, :, None], (4, 1, 3))
CASES = [
    ("kornia_rs", "nearest", [40, 120]),
    ("kornia_rs", "bilinear", [20, 100]),
    ("ncnn", "bilinear", [20, 100]),
    ("cykooz", "box", [20, 100]),
    ("cykooz", "bilinear", [29, 91]),
    ("cykooz", "lanczos3", [22, 98]),
    ("cykooz", "catmull_rom", [23, 97]),
    ("cykooz", "mitchell", [27, 93]),
    ("cykooz", "gaussian", [31, 89]),
    ("ov_ppp", "linear", [20, 100]),
    ("ov_ppp", "bilinear_pillow", [29, 91]),
]


@pytest.mark.parametrize("lib,interp,expected", CASES)
def test_4x4_to_2x2_matches_the_filter_definition(lib, interp, expected):
    spec = ResizeSpec(lib, interp, size=2, crop="squash")
    out = RESIZERS.get(lib).fn(RAMP, 2, 2, spec)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == expected
    assert out[:, 0, 0].tolist() == [expected[0]] * 2  # constant along y stays constant


def _photo(h: int = 240, w: int = 360) -> np.ndarray:
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100 * np.sin(x / 9.0), 128 + 100 * np.cos(y / 7.0), x * 0 + 90], 2)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_cykooz_bilinear_is_within_1_level_of_pillow_bilinear():
    img = _photo()
    out = RESIZERS.get("cykooz").fn(img, 96, 128, ResizeSpec("cykooz", "bilinear", 96))
    ref = np.asarray(Image.fromarray(img).resize((128, 96), Image.Resampling.BILINEAR))
    assert _max_diff(out, ref) <= 1


@pytest.mark.parametrize("lib", ["ncnn", "kornia_rs"])
def test_plain_bilinears_are_within_1_level_of_opencv_linear(lib):
    img = _photo()
    out = RESIZERS.get(lib).fn(img, 100, 150, ResizeSpec(lib, "bilinear", 100))
    ref = cv2.resize(img, (150, 100), interpolation=cv2.INTER_LINEAR)
    assert _max_diff(out, ref) <= 1


def test_ncnn_swapped_hw_changes_the_shape_exactly_as_swapping_the_arguments():
    """ncnn#5361: the same from_pixels_resize call with target width and height exchanged."""
    import ncnn

    img = _photo(120, 200)
    spec = ResizeSpec("ncnn", "bilinear", size=64, crop="squash_crop", crop_pct=1.0)
    bug = ResizeSpec("ncnn", "bilinear", size=64, crop="squash_crop", crop_pct=1.0, swap_hw=True)
    h, w = 50, 80  # what a non-square policy asks for; swap_hw hands ncnn (h, w) as (w, h)
    direct = np.array(
        ncnn.Mat.from_pixels_resize(img, ncnn.Mat.PixelType.PIXEL_RGB, 200, 120, h, w)
    )
    assert direct.shape == (3, w, h)  # ncnn read h as the width
    swapped = RESIZERS.get("ncnn").fn(img, w, h, spec)  # our call with the sizes exchanged
    assert (swapped == direct.transpose(1, 2, 0).astype(np.uint8)).all()
    # Through the policy: a centre-crop model on a non-square input gets a stretched image.
    center = ResizeSpec("ncnn", "bilinear", size=64)
    center_bug = ResizeSpec("ncnn", "bilinear", size=64, swap_hw=True)
    good, bad = resize(img, center), resize(img, center_bug)
    assert good.pixels.shape == bad.pixels.shape == (64, 64, 3)
    rh, rw = resized_hw(120, 200, center)
    assert good.geometry.scale == pytest.approx((rw / 200, rh / 120))
    assert bad.geometry.scale == pytest.approx((rh / 200, rw / 120))  # the distortion, recorded
    assert _max_diff(resize(img, spec).pixels, resize(img, bug).pixels) == 0  # square target


def _box_image(h: int, w: int, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    img = np.zeros((h, w, 3), np.uint8)
    img[y0:y1, x0:x1] = 255
    return img


def _edges(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 of the bright box in an image, to sub-pixel precision: along the middle
    row/column through the box, the bright extent is the sum of intensities / 255 on each side
    of the box's centre (a resampled step keeps its area)."""
    p = pixels[..., 0].astype(np.float64) / 255.0
    ys, xs = np.nonzero(p > 0.5)
    cy, cx = int(np.median(ys)), int(np.median(xs))
    row, col = p[cy], p[:, cx]
    return cx - row[:cx].sum(), cy - col[:cy].sum(), cx + row[cx:].sum(), cy + col[cy:].sum()


POLICIES = [
    dict(crop="center", crop_pct=0.875),
    dict(crop="squash"),
    dict(crop="squash_crop", crop_pct=0.875),
    dict(crop="letterbox"),
    dict(crop="letterbox", anchor="top_left"),
    dict(crop="letterbox_multiple", multiple=32),
    dict(crop="limit_max", limit_side_len=160, multiple=32),
    dict(crop="limit_min", limit_side_len=160, multiple=32),
    dict(crop="center", crop_pct=0.875, swap_hw=True),
]
LIBRARIES = [
    ("ncnn", "bilinear"),
    ("kornia_rs", "bilinear"),
    ("kornia_rs", "nearest"),
    ("cykooz", "lanczos3"),
    ("cykooz", "bilinear"),
    ("ov_ppp", "linear"),
]


def _ppp_pixels(frame, spec) -> np.ndarray:
    """What the compiled model sees: the host window through the same PPP resize."""
    return RESIZERS.get("ov_ppp").fn(frame.pixels, *spec.size, spec)


@pytest.mark.parametrize("lib,interp", LIBRARIES)
@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: "-".join(map(str, p.values())))
def test_geometry_round_trip_matches_the_pixels(lib, interp, policy):
    """A known box, through each policy x library: where its edges land in the model input
    (measured on the pixels) is where Geometry.to_model puts them, within 0.5 px, and
    Geometry.boxes_to_source maps the measured box back to the original within 0.5 px of
    the model grid."""
    in_model = bool(RESIZERS.get(lib).in_model)
    fixed_size = not policy["crop"].startswith(("limit", "letterbox_multiple"))
    if in_model and (not fixed_size or policy.get("swap_hw")):
        with pytest.raises(ValueError, match="resamples inside the model"):
            ResizeSpec(lib, interp, size=(96, 128), **policy)
        return
    box = (70, 50, 190, 130)  # x0, y0, x1, y1 in a 180 x 260 source; every policy keeps it
    img = _box_image(180, 260, box)
    spec = ResizeSpec(lib, interp, size=(96, 128), **policy)
    frame = resize(img, spec)
    seen = _ppp_pixels(frame, spec) if in_model else frame.pixels
    assert seen.shape[:2] == frame.geometry.out_hw
    measured = np.array(_edges(seen))
    expected = frame.geometry.to_model(np.array(box, float).reshape(2, 2)).ravel()
    oh, ow = frame.geometry.out_hw
    assert 0 < expected[0] < expected[2] < ow and 0 < expected[1] < expected[3] < oh
    assert np.abs(measured - expected).max() <= 0.5
    back = frame.geometry.boxes_to_source(measured[None])[0]
    sx, sy = frame.geometry.scale
    assert np.all(np.abs(back - np.array(box)) <= 0.5 / np.array([sx, sy, sx, sy]) + 1e-9)
