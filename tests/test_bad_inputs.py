"""Every bad input is either handled by an explicit policy or becomes an error row."""

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalharness.preprocess.decode import DecodeSpec, decode
from evalharness.preprocess.errors import StageError

from .badfiles import BAD_FILES
from .helpers import DEMO, demo_subset

LIBS = ["pil", "opencv", "torchvision"]


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_file(tmp_path, lib, name):
    make, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(make())
    try:
        out = decode(path, DecodeSpec(lib, exif="apply"))
    except StageError as e:
        assert expected in ("error", "either"), f"{lib} refused {name}: {e.reason}"
        assert e.stage == "decode" and len(e.reason.splitlines()) == 1
        return
    assert expected in ("ok", "either"), f"{lib} decoded {name}"
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    if name == "exif_rotated.jpg":
        assert out.shape[:2] == (96, 128)  # upright under the apply policy
    if name in ("cmyk.jpg", "sixteen_bit.png", "gray.jpg"):
        assert 60 < out.mean() < 160  # the picture, not zeros or inverted garbage


ALL_DECODERS = [*LIBS, "kornia_rs", "simplejpeg"]


@pytest.mark.parametrize("lib", ALL_DECODERS)
def test_unreadable_file_is_an_error_row_even_for_root(lib):
    import importlib.util

    if lib in ("kornia_rs", "simplejpeg") and importlib.util.find_spec(lib) is None:
        pytest.skip(f"pip install 'evalharness[{lib}]'")
    folder = Path(tempfile.mkdtemp(prefix="eh-perm-", dir="/tmp"))
    folder.chmod(0o755)  # the folder is readable by anyone: only the file's bits refuse
    path = folder / "secret.jpg"
    path.write_bytes(BAD_FILES["gray.jpg"][0]())
    path.chmod(0)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop to nobody, so the permission bits apply even under root
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                decode(path, DecodeSpec(lib))
                msg = b"decoded"
            except StageError as e:
                msg = e.reason.encode()
            os.write(write, msg)
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 1000).decode().startswith("permission denied")


def test_mixed_dataset_sweep_completes_with_the_right_error_counts(run_app, tmp_path):
    extra = {name: make() for name, (make, _) in BAD_FILES.items()}
    overrides = demo_subset(tmp_path / "ds", 20, extra)
    manifest = pd.read_csv(tmp_path / "ds" / "manifest.csv")
    # a copy: the same file listed twice is refused (every per-sample table joins on it)
    (tmp_path / "ds" / "images" / "label99.jpg").write_bytes(
        (tmp_path / "ds" / manifest.path[0]).read_bytes()
    )
    more = pd.DataFrame(
        [
            {"sample_id": "bad_missing", "path": "images/nowhere.jpg", "label": 0},
            {"sample_id": "bad_label", "path": "images/label99.jpg", "label": 99},
        ]
    )
    pd.concat([manifest, more]).to_csv(tmp_path / "ds" / "manifest.csv", index=False)
    summary, out = run_app(
        [
            *overrides,
            "+sweep=preproc_ablation",
            "sweep.factors.backend=[torch]",
            "sweep.factors.resize=[pil_bilinear]",
            "sweep.factors.norm=[host]",
        ]
    )
    assert (summary.n == 20 + len(BAD_FILES) + 2).all()
    errors = pd.read_csv(out / "errors.csv")
    per_decoder = summary.set_index("decoder").n_errors
    # empty, not-an-image, bomb, missing file and the bad label fail everywhere; a truncated
    # JPEG fails or is grey-padded depending on the library; torchvision.io reads no TIFF/BMP.
    assert 5 <= per_decoder["pil"] <= 6 and 5 <= per_decoder["opencv"] <= 6
    assert 7 <= per_decoder["torchvision"] <= 8
    assert set(errors.stage) == {"decode", "label"}
    assert "label 99 out of range 0..9" in errors.reason.tolist()
    reasons = errors.set_index("sample_id").reason
    assert reasons["bad_missing"].startswith("file not found")
    assert "bomb" in reasons["bad_bomb.png"] or "exceeds" in reasons["bad_bomb.png"]


def test_the_whole_catalogue_in_one_folder_sweep(run_app, tmp_path):
    """Every awkward file of the catalogue, a symlink loop, a directory named .jpg and odd
    file names, as a class-per-folder dataset on all three decoders: the run completes,
    every sample is its own row, each failure is one readable line."""
    from .badfiles import ODD_NAMES

    root = tmp_path / "folder"
    cls = root / "red_disk"
    cls.mkdir(parents=True)
    for name, (make, _) in BAD_FILES.items():
        (cls / name).write_bytes(make())
    good = BAD_FILES["gray.jpg"][0]()
    for name in ODD_NAMES:
        (cls / name).write_bytes(good)
    (cls / "loop_a.jpg").symlink_to(cls / "loop_b.jpg")
    (cls / "loop_b.jpg").symlink_to(cls / "loop_a.jpg")
    (cls / "a_directory.jpg").mkdir()
    others = [c for c in (DEMO / "classes.txt").read_text().split() if c != "red_disk"]
    for other in others:  # the demo model's ten classes, one good file in each other one
        (root / other).mkdir()
        (root / other / "ok.jpg").write_bytes(good)
    summary, out = run_app(
        [
            "dataset=folder",
            f"dataset.root={root}",
            "+sweep=preproc_ablation",
            "sweep.factors.backend=[torch]",
            "sweep.factors.resize=[pil_bilinear]",
            "sweep.factors.norm=[host]",
        ],
    )
    n_files = len(BAD_FILES) + len(ODD_NAMES) + 2 + 1 + len(others)  # + loops, the dir
    assert (summary.n == n_files).all()
    preds = pd.read_parquet(out / "predictions.parquet")
    assert not preds.duplicated(["sample_id", "config_id"]).any()
    errors = pd.read_csv(out / "errors.csv", keep_default_na=False)
    reasons = errors.drop_duplicates("sample_id").set_index("sample_id").reason
    assert "symbolic links" in reasons["red_disk/loop_a.jpg"]
    assert reasons["red_disk/a_directory.jpg"].startswith("a directory, not an image file")
    assert all("\n" not in r for r in errors.reason)
    ok_ids = set(preds[preds.error_stage.isna()].sample_id)
    for name in ODD_NAMES:  # odd names decode like any other file
        assert f"red_disk/{name}" in ok_ids
    for name in ("animated.gif", "png_named.jpg", "one_pixel.png", "wide_20000x100.png"):
        assert f"red_disk/{name}" in ok_ids, name
