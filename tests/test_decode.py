"""Decoders against known behaviour: EXIF policy, alpha policy, agreement, bad files."""

import io

import numpy as np
import pytest
from PIL import Image

from evalharness.preprocess.decode import DecodeSpec, decode
from evalharness.preprocess.errors import StageError

LIBS = ["pil", "opencv", "torchvision"]


def _asym_image() -> np.ndarray:
    """Upright 40x60 image whose top-left quadrant is red: orientation is easy to check."""
    img = np.full((40, 60, 3), 200, np.uint8)
    img[:20, :30] = (255, 0, 0)
    return img


@pytest.fixture
def exif_rotated(tmp_path):
    """Pixels stored rotated; EXIF orientation 6 says: rotate 90 deg clockwise to show."""
    stored = Image.fromarray(_asym_image()).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    stored.save(path, quality=95, exif=exif)
    return path


@pytest.mark.parametrize("lib", LIBS)
def test_exif_orientation_only_under_apply(lib, exif_rotated):
    upright = decode(exif_rotated, DecodeSpec(lib, exif="apply"))
    raw = decode(exif_rotated, DecodeSpec(lib, exif="ignore"))
    assert upright.shape == (40, 60, 3)
    assert raw.shape == (60, 40, 3)
    assert upright[5, 5, 0] > 200 and upright[5, 5, 2] < 60  # red corner back at top-left


@pytest.fixture
def rgba_png(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (10, 100, 200)
    rgba[..., 3] = 255
    rgba[:4, :, 3] = 0  # top half transparent, its stored colour kept
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize(
    "policy,expected", [("drop", (10, 100, 200)), ("black", (0, 0, 0)), ("white", (255, 255, 255))]
)
def test_alpha_policy(lib, policy, expected, rgba_png):
    out = decode(rgba_png, DecodeSpec(lib, alpha=policy))
    assert tuple(out[0, 0]) == expected
    assert tuple(out[7, 7]) == (10, 100, 200)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "g.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), "L").save(path)
    for lib in LIBS:
        out = decode(path, DecodeSpec(lib))
        assert out.shape == (8, 8, 3) and (out[..., 0] == out[..., 2]).all(), lib


def test_16bit_png_keeps_the_top_byte(tmp_path):
    path = tmp_path / "d.png"
    Image.fromarray(np.full((4, 4), 0xABCD, np.uint16)).save(path)
    for lib in ["pil", "opencv"]:
        assert decode(path, DecodeSpec(lib))[0, 0, 0] == 0xAB, lib


def test_decoders_agree_closely_on_a_baseline_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 40, (48, 64, 3)), 0, 255).astype(np.uint8)
    path = tmp_path / "x.jpg"
    Image.fromarray(img).save(path, quality=90)
    outs = {lib: decode(path, DecodeSpec(lib)).astype(int) for lib in LIBS}
    for lib in ["opencv", "torchvision"]:
        assert np.abs(outs[lib] - outs["pil"]).mean() < 1.0, lib


def test_reduced_decode_is_half_size(tmp_path):
    path = tmp_path / "x.jpg"
    Image.fromarray(np.zeros((64, 96, 3), np.uint8)).save(path)
    assert decode(path, DecodeSpec("pil", reduce=2)).shape == (32, 48, 3)
    assert decode(path, DecodeSpec("opencv", reduce=2)).shape == (32, 48, 3)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("content", [b"", b"not an image at all", "truncated"])
def test_bad_files_raise_stage_error(lib, content, tmp_path):
    path = tmp_path / "bad.jpg"
    if content == "truncated":
        buf = io.BytesIO()
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buf, format="JPEG")
        content = buf.getvalue()[:100]
    path.write_bytes(content)
    try:
        out = decode(path, DecodeSpec(lib))
    except StageError as e:
        assert e.stage == "decode" and e.reason
    else:  # some libraries pad a truncated JPEG with grey instead of failing; say so
        assert content and out.ndim == 3


def test_missing_file_is_a_stage_error(tmp_path):
    with pytest.raises(StageError, match="file not found"):
        decode(tmp_path / "nope.jpg", DecodeSpec("pil"))


def test_bad_policy_value_is_one_clear_line():
    with pytest.raises(ValueError, match="decoder.exif must be one of"):
        DecodeSpec("pil", exif="sometimes")
