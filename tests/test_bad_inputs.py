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
from .helpers import demo_subset

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


def test_unreadable_file_is_an_error_row_even_for_root():
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
                decode(path, DecodeSpec("pil"))
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
    assert (summary.n == 31).all()
    errors = pd.read_csv(out / "errors.csv")
    per_decoder = summary.set_index("decoder").n_errors
    # empty, not-an-image, bomb, missing file and the bad label fail everywhere; a truncated
    # JPEG fails or is grey-padded depending on the library.
    assert (per_decoder >= 5).all() and (per_decoder <= 6).all()
    assert set(errors.stage) == {"decode", "label"}
    assert "label 99 out of range 0..9" in errors.reason.tolist()
    reasons = errors.set_index("sample_id").reason
    assert reasons["bad_missing"].startswith("file not found")
    assert "bomb" in reasons["bad_bomb.png"] or "exceeds" in reasons["bad_bomb.png"]
