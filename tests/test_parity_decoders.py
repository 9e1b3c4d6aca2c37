"""Decoder parity, pair by pair: pixels (what differs, by how much) and the model's view."""

import pandas as pd

from evalharness.commands.parity import main


def test_decoder_pairs_on_the_demo_set(tmp_path, capsys):
    out = tmp_path / "p"
    names = "pil,opencv,simplejpeg,kornia_rs"
    assert main(["--decoders", names, "--n", "12", "--out", str(out)]) == 0
    pixels = pd.read_csv(out / "pixel_pairs.csv").set_index(["a", "b"])
    assert len(pixels) == 6  # every pair once
    same = pixels.loc[("pil", "simplejpeg")]
    assert same.max_abs == 0 and same.files_differing == 0 and same.psnr == float("inf")
    # demo files 0005, 0007 and 0011 are PNGs: the JPEG-only decoders cannot compare them
    assert same.not_comparable == 3 and pixels.loc[("pil", "opencv")].not_comparable == 0
    rust = pixels.loc[("pil", "kornia_rs")]
    assert rust.files_differing == 1 and 0 < rust.max_abs <= 4
    # sample 0009 carries EXIF orientation 3: OpenCV turns it upright, Pillow does not
    exif = pixels.loc[("pil", "opencv")]
    assert exif.files_differing == 1 / 12 and exif.max_abs > 100
    files = pd.read_csv(out / "pixel_files.csv", dtype={"sample_id": str})
    png = files[(files.a == "pil") & (files.b == "simplejpeg") & ~files.comparable]
    assert set(png.sample_id) == {"0005", "0007", "0011"}
    assert png.note.str.contains("does not read PNG files").all()
    model = pd.read_csv(out / "model_pairs.csv").set_index(["a", "b"])
    assert model.loc[("pil", "simplejpeg")].errors_b == 3
    assert model.loc[("pil", "opencv")].errors_a == 0
    assert ((model.same_prediction >= 0) & (model.same_prediction <= 100)).all()
    assert "model (top1, 12 images" in capsys.readouterr().out


def test_pixels_only_skips_the_model(tmp_path):
    out = tmp_path / "p"
    assert (
        main(["--decoders", "pil,simplejpeg_fast", "--n", "4", "--pixels-only", "--out", str(out)])
        == 0
    )
    assert (out / "pixel_pairs.csv").exists() and not (out / "model_pairs.csv").exists()
