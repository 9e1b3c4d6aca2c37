"""Colour order and the host side of each normalization placement, against torchvision."""

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

from evalharness.preprocess.colour import ColourSpec, HostNormSpec, apply_colour, host_normalize
from evalharness.preprocess.geometry import Frame, Geometry

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMG = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
FRAME = Frame(IMG, Geometry.identity((5, 7)))


def _norm(placement, mean=MEAN, std=STD) -> np.ndarray:
    return host_normalize(FRAME, HostNormSpec(placement, mean, std)).pixels


def test_bgr_reverses_the_channels_and_rgb_keeps_them():
    assert (apply_colour(FRAME, ColourSpec("bgr")).pixels == IMG[..., ::-1]).all()
    assert apply_colour(FRAME, ColourSpec("rgb")).pixels is IMG


def test_host_matches_totensor_then_normalize_bit_for_bit():
    """The classic ToTensor() + Normalize() the reference models were evaluated with."""
    ref = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    expected = ref(Image.fromarray(IMG)).numpy()
    out = _norm("host")
    assert out.dtype == np.float32 and out.shape == (3, 5, 7)
    assert np.array_equal(out, expected)
    # transforms.v2 scales by multiplying with 1/255: the same math, other last bits.
    v2ref = v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    )
    v2out = v2ref(torch.from_numpy(IMG).permute(2, 0, 1)).numpy()
    assert 0 < np.abs(v2out - out).max() < 1e-6


def test_graph_hands_raw_pixels_and_ppp_hands_uint8_hwc():
    raw = _norm("graph")
    assert raw.dtype == np.float32 and raw.max() == IMG.max() and raw.shape == (3, 5, 7)
    assert _norm("ov_ppp") is IMG


def test_unit_and_raw255_scales():
    unit = _norm("host", (0.0,) * 3, (1.0,) * 3)
    assert 0 <= unit.min() and unit.max() <= 1
    # raw 0..255 pixels (YOLOX's input) are a plain cast: x / 255 * 255 is not always x
    raw = _norm("host", (0.0,) * 3, (1 / 255,) * 3)
    assert np.array_equal(raw, IMG.transpose(2, 0, 1).astype(np.float32))
