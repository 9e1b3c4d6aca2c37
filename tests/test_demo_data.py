"""The committed demo set is what the generator makes, and has the properties it promises."""

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from evalharness.demo.demo import EVAL_SPLIT, encode, file_kind, sample_rng
from evalharness.demo.synth import CLASSES, render
from evalharness.paths import PROJECT_ROOT

DEMO = PROJECT_ROOT / "datasets" / "demo"


@pytest.fixture(scope="module")
def manifest() -> pd.DataFrame:
    return pd.read_csv(DEMO / "manifest.csv", dtype={"sample_id": str})


def test_size_and_classes(manifest):
    assert len(manifest) >= 500
    assert manifest.label.nunique() >= 8
    assert manifest.label_name.tolist() == [CLASSES[i] for i in manifest.label]
    total = sum((DEMO / p).stat().st_size for p in manifest.path)
    assert total < 15e6


def test_every_file_matches_its_sha256(manifest):
    for row in manifest.itertuples():
        assert hashlib.sha256((DEMO / row.path).read_bytes()).hexdigest() == row.sha256, row.path


@pytest.mark.parametrize("i", [0, 1, 7, 9, 62])
def test_regeneration_is_byte_identical(manifest, i):
    row = manifest.iloc[i]
    rng = sample_rng(EVAL_SPLIT, i)
    img = render(int(row.label), rng)
    kind = file_kind(i, row.label_name)
    data = encode(img, kind, quality=int(rng.integers(80, 93)), rng=rng)
    assert hashlib.sha256(data).hexdigest() == row.sha256


def test_file_mix_covers_what_deployments_meet(manifest):
    kinds = manifest.kind
    assert (manifest.width != manifest.height).mean() > 0.6  # mostly non-square
    assert kinds.str.contains("progressive").sum() >= 50
    assert kinds.str.contains("exif").sum() >= 6
    assert kinds.str.startswith("jpeg-l").sum() >= 3
    assert kinds.str.startswith("png-l").sum() >= 2
    assert (kinds == "png-rgba").sum() == 1
    with Image.open(DEMO / manifest.path[manifest.kind.str.contains("420")].iloc[0]) as im:
        assert im.layer[0][1:3] == (2, 2)  # luma sampled 2x2 against chroma: 4:2:0


def test_fine_pattern_aliases_without_antialiasing():
    """The property the demo exists for: fine stripes average out only with antialiasing."""
    img = render(CLASSES.index("fine_stripes"), np.random.default_rng(3))
    small_aa = np.asarray(Image.fromarray(img).resize((64, 64), Image.Resampling.BILINEAR))
    step_y, step_x = img.shape[0] / 64, img.shape[1] / 64
    ys = (np.arange(64) * step_y).astype(int)
    xs = (np.arange(64) * step_x).astype(int)
    small_nn = img[ys][:, xs]
    centre = (slice(24, 40), slice(24, 40))
    assert small_nn[centre].std() > 2 * small_aa[centre].std()
