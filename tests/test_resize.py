"""Resize against hand-computed results, and the crop geometry every library shares."""

import numpy as np
import pytest

from evalharness.preprocess.resize import ResizeSpec, limited_hw, resize, resized_hw

# 4x4 -> 2x2 on a ramp along x: [0, 40, 80, 120]. Expected first row, by the filter's definition:
# - block mean (box/area; 2x bilinear without antialias samples halfway between two pixels):
#   [20, 100]
# - nearest, OpenCV/torchvision: src = floor(dst * 2) -> [0, 80]
# - nearest, Pillow: samples pixel centres, src = floor((dst + .5) * 2) -> [40, 120]
# - antialiased bilinear (triangle of support 2 at scale 2: weights .75 .75 .25 / 1.75):
#   [28.57, 91.43] -> [29, 91]
RAMP = np.tile(np.array([0, 40, 80, 120], np.uint8)[None, :, None], (4, 1, 3))
CASES = [
    ("pil", "box", True, [20, 100]),
    ("pil", "nearest", False, [40, 120]),
    ("pil", "bilinear", True, [29, 91]),
    ("opencv", "bilinear", False, [20, 100]),
    ("opencv", "area", True, [20, 100]),
    ("opencv", "nearest", False, [0, 80]),
    ("torchvision", "bilinear", False, [20, 100]),
    ("torchvision", "bilinear", True, [29, 91]),
    ("torchvision", "nearest", False, [0, 80]),
]


@pytest.mark.parametrize("lib,interp,aa,expected", CASES)
def test_4x4_to_2x2_matches_the_filter_definition(lib, interp, aa, expected):
    spec = ResizeSpec(lib, interp, size=2, antialias=aa, crop="squash")
    out = resize(RAMP, spec).pixels
    assert out.shape == (2, 2, 3)
    assert out[0, :, 0].tolist() == expected


def test_center_crop_geometry_follows_torchvision():
    spec = ResizeSpec("pil", "bilinear", size=64, crop="center", crop_pct=0.875)
    assert resized_hw(200, 300, spec) == (73, 109)  # short side floor(64 / .875), long truncated
    assert resized_hw(300, 200, spec) == (109, 73)


@pytest.mark.parametrize("lib", ["pil", "opencv", "torchvision"])
@pytest.mark.parametrize("crop", ["center", "squash", "letterbox", "squash_crop"])
def test_every_library_and_crop_gives_the_model_size(lib, crop):
    img = np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    out = resize(img, ResizeSpec(lib, "bilinear", size=64, crop=crop)).pixels
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8


def test_letterbox_pads_the_short_axis():
    img = np.full((50, 100, 3), 255, np.uint8)
    out = resize(img, ResizeSpec("pil", "bilinear", size=64, crop="letterbox", pad_value=0)).pixels
    assert (out[:8] == 0).all() and (out[-8:] == 0).all() and (out[32] == 255).all()


def test_swapped_size_distorts_non_square_input():
    """ncnn#5361-style bug: width and height exchanged in the resize call."""
    img = np.random.default_rng(1).integers(0, 255, (120, 240, 3), dtype=np.uint8)
    ok = ResizeSpec("pil", "bilinear", size=64)
    bug = ResizeSpec("pil", "bilinear", size=64, swap_hw=True)
    assert resize(img, bug).pixels.shape == (64, 64, 3)
    good, bad = resize(img, ok).pixels.astype(int), resize(img, bug).pixels.astype(int)
    assert np.abs(good - bad).mean() > 20
    square = img[:, :120]
    assert (resize(square, ok).pixels == resize(square, bug).pixels).all()  # a square hides it


def test_unknown_interpolation_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown interpolation for opencv 'box'.*valid: area"):
        ResizeSpec("opencv", "box", size=4)


@pytest.mark.parametrize(
    "h,w,limit,is_max,expected",
    [
        (720, 1280, 960, True, (544, 960)),  # long side 1280 > 960: ratio .75 -> 540 -> 544
        (300, 400, 960, True, (288, 384)),  # only rounded; Python rounds 12.5 to 12 (as Paddle)
        (300, 400, 736, False, (736, 992)),  # short side 300 < 736: ratio 2.453 -> 981 -> 992
        (1000, 2000, 736, False, (992, 1984)),  # short side large enough: only rounded
        (10, 10, 960, True, (0, 0)),  # rounds to 0 as in rapidocr; resize() refuses it
    ],
)
def test_limit_policies_follow_paddleocr(h, w, limit, is_max, expected):
    assert limited_hw(h, w, limit, is_max, 32) == expected


def test_limit_policy_output_is_the_model_size():
    img = np.zeros((150, 260, 3), np.uint8)
    for crop in ("limit_max", "limit_min"):
        out = resize(img, ResizeSpec("pil", "bilinear", 64, crop=crop)).pixels
        assert out.shape == (64, 64, 3)
