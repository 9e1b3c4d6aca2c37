"""The Rust and TurboJPEG decoders (kornia_rs, simplejpeg, simplejpeg_fast) against known
behaviour: what they share with libjpeg-turbo, where they differ, and what they refuse."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evalharness.config.plan import PlanError
from evalharness.engine.versions import library_versions
from evalharness.preprocess.decode import DECODERS, DecodeSpec, decode
from evalharness.preprocess.errors import StageError

from .badfiles import BAD_FILES
from .conftest import SHARED_DATA, plan_of

NEW = ["kornia_rs", "simplejpeg", "simplejpeg_fast"]


def _photo(h: int = 96, w: int = 128) -> np.ndarray:
    """Smooth gradients plus texture: what a JPEG IDCT choice shows up on."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=2)
    noise = rng.normal(0, 25, (h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture(params=[("4:2:0", 0), ("4:4:4", 0), ("4:2:2", 0), ("4:2:0", 1), ("gray", 0)])
def jpeg(request, tmp_path) -> Path:
    """Baseline and progressive JPEGs in the common chroma subsamplings, and a gray one."""
    sub, progressive = request.param
    img = Image.fromarray(_photo())
    kw = {"quality": 85, "progressive": bool(progressive)}
    if sub == "gray":
        img = img.convert("L")
    else:
        kw["subsampling"] = sub
    path = tmp_path / f"x_{sub.replace(':', '')}_{progressive}.jpg"
    img.save(path, **kw)
    return path


def test_simplejpeg_accurate_is_bit_identical_to_pillow(jpeg):
    ref = decode(jpeg, DecodeSpec("pil"))
    assert (decode(jpeg, DecodeSpec("simplejpeg")) == ref).all()


def test_simplejpeg_fast_differs_from_the_accurate_decode(tmp_path):
    path = tmp_path / "p.jpg"
    Image.fromarray(_photo()).save(path, quality=85)
    accurate = decode(path, DecodeSpec("simplejpeg")).astype(int)
    fast = decode(path, DecodeSpec("simplejpeg_fast")).astype(int)
    assert accurate.shape == fast.shape
    assert (accurate != fast).mean() > 0.2  # most pixels move a level or more
    assert 0 < np.abs(accurate - fast).max() <= 40


def test_kornia_rs_is_within_a_few_levels_of_pillow(jpeg):
    """A different IDCT and chroma upsampling: the COCO files differ by up to 3 levels (shared
    README); 4:2:0 files with strong chroma texture (these, the ImageNet copies) reach 4."""
    ref = decode(jpeg, DecodeSpec("pil")).astype(int)
    out = decode(jpeg, DecodeSpec("kornia_rs")).astype(int)
    assert out.shape == ref.shape
    d = np.abs(out - ref)
    assert d.max() <= (4 if "420" in jpeg.name else 3) and d.mean() < 0.5


@pytest.mark.parametrize("reduce", [2, 4, 8])
def test_simplejpeg_reduce_is_the_dct_domain_downscale_of_pillow_draft(tmp_path, reduce):
    path = tmp_path / "r.jpg"
    Image.fromarray(_photo(100, 150)).save(path, quality=90)
    out = decode(path, DecodeSpec("simplejpeg", reduce=reduce))
    assert out.shape[:2] == (-(-100 // reduce), -(-150 // reduce))
    assert (out == decode(path, DecodeSpec("pil", reduce=reduce))).all()


@pytest.mark.parametrize("lib", NEW)
def test_a_png_is_an_error_row_not_a_crash(lib, tmp_path):
    path = tmp_path / "named.jpg"  # the name lies; the content is sniffed
    Image.fromarray(_photo()).save(path, format="PNG")
    with pytest.raises(StageError, match=f"decoder '{lib}' does not read PNG files"):
        decode(path, DecodeSpec(lib))


@pytest.mark.parametrize("lib", NEW)
def test_exif_apply_is_refused_where_the_library_never_reads_it(lib):
    with pytest.raises(ValueError, match=f"decoder '{lib}' cannot honour exif=apply"):
        DecodeSpec(lib, exif="apply")


def test_planning_refuses_exif_apply_on_kornia_rs_with_one_line():
    overrides = ["decoder=kornia_rs", "decoder.exif=apply"]
    with pytest.raises(PlanError) as e:
        plan_of(overrides)
    assert "decoder 'kornia_rs' cannot honour exif=apply (it supports ignore)" in str(e.value)
    assert len(str(e.value).splitlines()) == 1


@pytest.mark.parametrize("lib", NEW)
@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_file(tmp_path, lib, name):
    """The bad-input catalogue (tests/badfiles.py): a picture or an error row with a reason."""
    make, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(make())
    jpeg_only = not (name.endswith(".jpg") and name != "png_named.jpg")
    cmyk_on_kornia = lib == "kornia_rs" and name == "cmyk.jpg"
    try:
        out = decode(path, DecodeSpec(lib))
    except StageError as e:
        assert e.stage == "decode" and len(e.reason.splitlines()) == 1
        assert expected in ("error", "either") or jpeg_only or cmyk_on_kornia, e.reason
        return
    assert expected in ("ok", "either") and not jpeg_only, f"{lib} decoded {name}"
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    if name == "exif_rotated.jpg":
        assert out.shape[:2] == (128, 96)  # stored orientation: these never apply the tag
    if name in ("cmyk.jpg", "gray.jpg"):
        assert 60 < out.mean() < 160  # the picture, not zeros or inverted garbage


def test_grayscale_jpeg_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "g.jpg"
    Image.fromarray(_photo()[..., 0]).save(path, quality=90)
    for lib in NEW:
        out = decode(path, DecodeSpec(lib))
        assert out.shape == (96, 128, 3) and (out[..., 0] == out[..., 2]).all(), lib


def test_declared_capabilities_and_versions():
    for lib in NEW:
        caps = DECODERS.get(lib).caps
        assert caps.formats == ("jpeg",) and caps.exif == ("ignore",) and not caps.bit16
    assert DECODERS.get("kornia_rs").caps.reduce == (1,)
    assert DECODERS.get("simplejpeg").caps.reduce == (1, 2, 4, 8)
    assert DECODERS.get("kornia_rs").caps.extra == "kornia"
    v = library_versions()
    for key in ("kornia_rs", "simplejpeg", "cykooz_resizer", "ncnn"):
        assert v[key][0].isdigit(), key
    assert DECODERS.get("kornia_rs").versions() == {"kornia_rs": v["kornia_rs"]}


def _real_files(n: int) -> list[Path]:
    coco = sorted((SHARED_DATA / "coco-mini-val2017" / "images").glob("*.jpg"))[:n]
    imagenet = sorted((SHARED_DATA / "imagenet-val-1300" / "data").glob("*.JPEG"))[:n]
    return coco + imagenet


@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} is absent")
def test_real_jpegs_simplejpeg_equals_pillow_kornia_close_fast_differs():
    for path in _real_files(6):
        ref = decode(path, DecodeSpec("pil")).astype(int)
        assert (decode(path, DecodeSpec("simplejpeg")) == ref).all(), path.name
        k = np.abs(decode(path, DecodeSpec("kornia_rs")).astype(int) - ref).max()
        assert 0 < k <= 5, path.name  # all 79 COCO files: up to 3; the 1,300 ImageNet: up to 5
        fast = decode(path, DecodeSpec("simplejpeg_fast")).astype(int)
        assert (fast != ref).mean() > 0.5, path.name
