"""`dataset=filename_labels`: labels from file names -- ImageNet synset prefixes indexed by the
shipped standard list (never by the synsets present), or a regex with a `label` group."""

import shutil

import numpy as np
import onnx
import pandas as pd
import pytest
from omegaconf import OmegaConf
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from evalharness.data.dataset import load_dataset
from evalharness.data.loaders.filename_labels import STANDARD_SYNSETS
from evalharness.paths import PROJECT_ROOT

from .conftest import run_in_process

DEMO = PROJECT_ROOT / "datasets" / "demo"


def _cfg(root, **kw):
    return OmegaConf.create({"name": "t", "kind": "filename_labels", "root": str(root), **kw})


def _solid(path, rgb):
    Image.new("RGB", (40, 40), rgb).save(path, quality=95)


def test_the_shipped_list_is_the_standard_1000_synsets():
    lines = STANDARD_SYNSETS.read_text().splitlines()
    wnids = [ln.split()[0] for ln in lines]
    assert len(lines) == 1000 and wnids == sorted(wnids) and len(set(wnids)) == 1000
    assert lines[0] == "n01440764 tench, Tinca tinca"
    assert lines[999].startswith("n15075141 toilet tissue")


def test_synset_prefixes_index_the_standard_list_not_the_folder(tmp_path):
    for name in ["n15075141_1.JPEG", "n01440764_tench.JPEG", "n01440764_10026.JPEG"]:
        _solid(tmp_path / name, (128, 128, 128))
    _solid(tmp_path / "n99999999_1.JPEG", (0, 0, 0))
    _solid(tmp_path / "holiday.jpg", (0, 0, 0))
    (tmp_path / "README.txt").write_text("not an image")
    ds = load_dataset(_cfg(tmp_path))
    got = {s.sample_id: (s.label, s.problem) for s in ds.samples}
    assert got["n01440764_tench.JPEG"] == (0, None)
    assert got["n01440764_10026.JPEG"] == (0, None)
    assert got["n15075141_1.JPEG"] == (999, None)  # 1 if indices came from the folder
    assert got["n99999999_1.JPEG"] == (-1, "synset n99999999 is not in the synset list")
    assert got["holiday.jpg"][1] == "no synset prefix (nXXXXXXXX_) in the file name"
    assert len(ds) == 5 and len(ds.classes) == 1000  # unusable files stay, as error rows
    assert ds.classes[0] == "tench" and ds.classes[999] == "toilet tissue"


def test_a_pattern_with_a_classes_file_or_the_sorted_names(tmp_path, caplog):
    for name in ["cat_1.jpg", "dog_2.jpg", "dog_10.jpg", "bird-3.jpg"]:
        _solid(tmp_path / name, (10, 20, 30))
    (tmp_path / "classes.txt").write_text("dog\ncat\n")
    pattern = r"(?P<label>[a-z]+)_\d+\.jpg"
    ds = load_dataset(_cfg(tmp_path, pattern=pattern, classes="classes.txt"))
    got = {s.sample_id: (s.label, s.problem) for s in ds.samples}
    assert ds.classes == ["dog", "cat"]
    assert got["cat_1.jpg"] == (1, None) and got["dog_10.jpg"] == (0, None)
    assert got["bird-3.jpg"][1].startswith("file name does not match dataset.pattern")
    ds = load_dataset(_cfg(tmp_path, pattern=pattern))
    assert ds.classes == ["cat", "dog"] and "sorted names found" in caplog.text
    (tmp_path / "fish_4.jpg").write_bytes((tmp_path / "cat_1.jpg").read_bytes())
    ds = load_dataset(_cfg(tmp_path, pattern=pattern, classes="classes.txt"))
    fish = next(s for s in ds.samples if s.sample_id == "fish_4.jpg")
    assert fish.problem == "class 'fish' is not in the classes list"


@pytest.mark.parametrize(
    "kw,error,message",
    [
        ({"pattern": r"[a-z]+_\d+\.jpg"}, ValueError, "has no named group 'label'"),
        ({"pattern": r"(?P<label>[a-z+"}, ValueError, "is not a regular expression"),
        ({"pattern": r"(?P<label>\w+)", "classes": "nope.txt"}, FileNotFoundError, "class list"),
        ({"synsets": "nope.txt"}, FileNotFoundError, "synset list not found"),
    ],
)
def test_wrong_settings_are_one_clear_error(tmp_path, kw, error, message):
    _solid(tmp_path / "a_1.jpg", (0, 0, 0))
    with pytest.raises(error, match=message):
        load_dataset(_cfg(tmp_path, **kw))


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder not found"):
        load_dataset(_cfg(tmp_path / "absent"))


def _colour_model(path):
    """A 1,000-class ONNX classifier: class 0 for a red image, class 999 for a blue one."""
    w = np.zeros((3, 1000), np.float32)
    w[0, 0], w[2, 999] = 1.0, 1.0  # logit 0 = mean normalized R, logit 999 = mean B
    bias = np.full(1000, -10.0, np.float32)
    bias[[0, 999]] = 0.0
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["pooled", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["logits"]),
        ],
        "colour",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_a_synset_folder_evaluates_without_a_manifest(tmp_path):
    data = tmp_path / "val"
    data.mkdir()
    for k in range(3):
        _solid(data / f"n01440764_{k}.JPEG", (230, 20, 20))  # tench = index 0: red
        _solid(data / f"n15075141_{k}.JPEG", (20, 20, 230))  # toilet tissue = 999: blue
    _solid(data / "n01443537_0.JPEG", (20, 20, 230))  # goldfish (1), but blue: a miss
    _colour_model(tmp_path / "colour.onnx")
    summary, out = run_in_process(
        [
            "dataset=filename_labels",
            f"dataset.root={data}",
            "model=onnx_file",
            f"model.weights={tmp_path / 'colour.onnx'}",
            "model.card.input_size=32",
            "backend=onnxruntime",
        ],
        tmp_path / "run",
    )
    assert summary.n.iloc[0] == 7 and summary.n_errors.iloc[0] == 0
    assert summary.top1.iloc[0] == pytest.approx(6 / 7 * 100)
    preds = pd.read_parquet(out / "predictions.parquet").set_index("sample_id")
    assert preds.label["n15075141_0.JPEG"] == 999 and preds.pred["n15075141_0.JPEG"] == 999
    assert preds.label["n01443537_0.JPEG"] == 1 and preds.pred["n01443537_0.JPEG"] == 999


def test_a_pattern_folder_scores_like_the_manifest(tmp_path):
    manifest = pd.read_csv(DEMO / "manifest.csv").head(40)
    data = tmp_path / "flat"
    data.mkdir()
    for row in manifest.itertuples():
        src = DEMO / row.path
        shutil.copy(src, data / f"{row.label_name}_{row.sample_id}{src.suffix}")
    flat, _ = run_in_process(
        [
            "dataset=filename_labels",
            f"dataset.root={data}",
            r"dataset.pattern='(?P<label>[a-z_]+)_\d+\.\w+'",
            f"dataset.classes={DEMO / 'classes.txt'}",
        ],
        tmp_path / "flat_run",
    )
    listed, _ = run_in_process(["dataset.limit=40"], tmp_path / "manifest_run")
    assert flat.n.iloc[0] == 40 and flat.n_errors.iloc[0] == 0
    assert flat.top1.iloc[0] == listed.top1.iloc[0] > 80
