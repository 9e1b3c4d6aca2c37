"""The parity tool finds the first differing stage and writes golden files."""

import numpy as np
import pandas as pd

from evalharness.checks.parity import diff_stats
from evalharness.commands.parity import main


def test_diff_stats():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255
    st = diff_stats(a, b)
    assert st["max_abs"] == 255 and st["share_differing"] == 1 / 48
    assert abs(st["psnr"] - 10 * np.log10(255**2 / (255**2 / 48))) < 1e-9
    assert not diff_stats(a, b[:2])["comparable"]


def test_decoder_parity_points_at_exif_files(tmp_path, capsys):
    out = tmp_path / "parity.csv"
    # Demo sample 9 carries EXIF orientation 3: OpenCV turns it upright, Pillow does not.
    assert (
        main(
            [
                "dataset.limit=12",
                "--a",
                "decoder=pil",
                "--b",
                "decoder=opencv",
                "--n",
                "12",
                "--out",
                str(out),
                "--golden",
                str(tmp_path / "g"),
            ]
        )
        == 0
    )
    table = pd.read_csv(out, dtype={"sample_id": str})
    first = table[table.stage == "first_difference"].set_index("sample_id").note
    assert first["0009"] == "decode"
    assert (first.drop("0009") == "none").all()
    assert "top-1 agreement" in capsys.readouterr().out
    golden = np.load(tmp_path / "g" / "0000.a.npz")
    assert set(golden.files) == {"decode", "resize", "colour", "normalize"}
    assert golden["normalize"].shape == (3, 64, 64)
    outputs = np.load(tmp_path / "g" / "0000.b.outputs.npz")
    assert outputs["logits"].shape == (10,)


def test_resize_parity_without_antialias_differs_at_resize(tmp_path):
    out = tmp_path / "p.csv"
    main(
        [
            "dataset.limit=4",
            "--a",
            "resize=pil_bilinear",
            "--b",
            "resize=cv2_linear",
            "--n",
            "4",
            "--out",
            str(out),
        ]
    )
    table = pd.read_csv(out)
    assert (table[table.stage == "first_difference"].note == "resize").all()
