"""Your model in one command: `model=onnx_file model.weights=M.onnx dataset=... dataset.root=D`.

The class count, input name, layout and fixed size come from the file (ONNX, OpenVINO IR,
ncnn .param/.bin); the backend defaults to the file's own runtime; a mismatch that remains
names the setting that fixes it; the card's preset sets the reference.
"""

import struct
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from evalharness.config.card import apply_preset
from evalharness.config.plan import PlanError
from evalharness.models.fileinfo import read_file_info

from .conftest import plan_of, run_in_process

TOP1 = 6 / 7 * 100  # the goldfish file is blue: a miss


def _solid(path, rgb, size=(48, 40)):
    Image.new("RGB", size, rgb).save(path, quality=95)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Synset-named files: red tench (class 0), blue toilet tissue (999), one blue goldfish."""
    data = tmp_path_factory.mktemp("val")
    for k in range(3):
        _solid(data / f"n01440764_{k}.JPEG", (230, 20, 20))
        _solid(data / f"n15075141_{k}.JPEG", (20, 20, 230))
    _solid(data / "n01443537_0.JPEG", (20, 20, 230))
    return data


def colour_onnx(path, nhwc=False, n_classes=1000, size=32):
    """A classifier: logit 0 = mean normalized R, logit n-1 = mean B, the others -10."""
    w = np.zeros((3, n_classes), np.float32)
    w[0, 0], w[2, n_classes - 1] = 1.0, 1.0
    bias = np.full(n_classes, -10.0, np.float32)
    bias[[0, n_classes - 1]] = 0.0
    shape = ["N", size, size, 3] if nhwc else ["N", 3, size, size]
    graph = helper.make_graph(
        [
            helper.make_node(
                "ReduceMean", ["x"], ["pooled"], axes=[1, 2] if nhwc else [2, 3], keepdims=0
            ),  # fmt: skip
            helper.make_node("MatMul", ["pooled", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["logits"]),
        ],
        "colour",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_classes])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    import onnx

    onnx.save(model, path)
    return path


def colour_ir(tmp_path):
    import openvino as ov

    xml = tmp_path / "colour.xml"
    ov.save_model(ov.Core().read_model(str(colour_onnx(tmp_path / "for_ir.onnx"))), str(xml))
    return xml


def colour_ncnn(tmp_path, size=32):
    """The same classifier written as an ncnn .param/.bin pair (global average pooling, then
    an InnerProduct 3 -> 1000 with bias)."""
    param = tmp_path / "colour.param"
    param.write_text(
        "7767517\n4 4\n"
        f"Input data 0 1 data 0={size} 1={size} 2=3\n"
        "Pooling gap 1 1 data pooled 0=1 4=1\n"
        "InnerProduct fc 1 1 pooled fc 0=1000 1=1 2=3000\n"
        "Softmax prob 1 1 fc prob\n"
    )
    w = np.zeros((1000, 3), np.float32)  # ncnn: (num_output, input) row-major
    w[0, 0], w[999, 2] = 1.0, 1.0
    bias = np.full(1000, -10.0, np.float32)
    bias[[0, 999]] = 0.0
    (tmp_path / "colour.bin").write_bytes(struct.pack("<I", 0) + w.tobytes() + bias.tobytes())
    return param


def test_the_file_says_its_input_and_class_count(tmp_path):
    info = read_file_info(colour_onnx(tmp_path / "m.onnx"), "onnx")
    assert (info.input_name, info.layout, info.input_hw, info.num_classes) == (
        "x", "NCHW", (32, 32), 1000)  # fmt: skip
    info = read_file_info(colour_onnx(tmp_path / "h.onnx", nhwc=True, size=40), "onnx")
    assert (info.layout, info.input_hw) == ("NHWC", (40, 40))
    info = read_file_info(colour_ir(tmp_path), "openvino")
    assert (info.layout, info.input_hw, info.num_classes) == ("NCHW", (32, 32), 1000)
    info = read_file_info(colour_ncnn(tmp_path), "ncnn")
    assert (info.input_name, info.input_hw, info.num_classes) == ("data", (32, 32), 1000)


def _own(kind: str, weights, folder, *extra):
    return [f"model={kind}", f"model.weights={weights}", "dataset=filename_labels",
            f"dataset.root={folder}", *extra]  # fmt: skip


@pytest.mark.parametrize("kind,backend", [("onnx_file", "onnxruntime"),
                                          ("openvino_file", "openvino"),
                                          ("ncnn_file", "ncnn")])  # fmt: skip
def test_a_model_file_runs_on_its_own_runtime_with_what_it_says(tmp_path, folder, kind, backend):
    pytest.importorskip(backend)
    weights = {"onnx_file": lambda: colour_onnx(tmp_path / "m.onnx"),
               "openvino_file": lambda: colour_ir(tmp_path),
               "ncnn_file": lambda: colour_ncnn(tmp_path)}[kind]()  # fmt: skip
    plan = plan_of(_own(kind, weights, folder))
    assert plan.model.num_classes == 1000 and plan.model.input_hw == (32, 32)
    assert plan.choices["backend"] == backend
    assert any("1000 classes" in n and "input 32x32" in n for n in plan.notes)
    summary, _ = run_in_process(_own(kind, weights, folder), tmp_path / "run")
    assert summary.backend.tolist() == [backend] and summary.reference.all()
    assert summary.top1.iloc[0] == pytest.approx(TOP1) and summary.n_errors.iloc[0] == 0


def test_an_nhwc_onnx_model_runs_on_onnxruntime(tmp_path, folder):
    weights = colour_onnx(tmp_path / "nhwc.onnx", nhwc=True, size=40)
    summary, _ = run_in_process(_own("onnx_file", weights, folder), tmp_path / "run")
    assert summary.top1.iloc[0] == pytest.approx(TOP1)


def test_a_remaining_mismatch_names_the_setting_that_fixes_it(tmp_path, folder):
    ten = colour_onnx(tmp_path / "ten.onnx", n_classes=10)
    with pytest.raises(
        ValueError,
        match=r"has 10 classes \(read from ten.onnx\), dataset "
        r"'filename_labels' has 1000: .*dataset.classes=FILE.*model.num_classes=1000",
    ):
        plan_of(_own("onnx_file", ten, folder))  # fmt: skip
    with pytest.raises(
        PlanError, match="a onnx model cannot run on torch: set backend=onnxruntime"
    ):
        plan_of(_own("onnx_file", colour_onnx(tmp_path / "m.onnx"), folder, "backend=torch"))


def test_the_card_preset_sets_the_reference_and_a_factor_deviates_from_it(tmp_path, folder):
    weights = colour_onnx(tmp_path / "m.onnx")
    tf = plan_of(_own("onnx_file", weights, folder, "model.card.preset=tf"))
    ref = next(s for s in tf.specs if s.is_reference)
    assert ref.variant.mean == (0.5, 0.5, 0.5) and tf.choices["meanstd"] == "card"
    sweep = plan_of(_own("onnx_file", weights, folder, "model.card.preset=tf", "meanstd=imagenet"))
    assert {s.factor_dict["meanstd"] for s in sweep.specs} == {"imagenet", "card"}
    caffe = plan_of(_own("onnx_file", weights, folder, "model.card.preset=caffe_bgr"))
    assert caffe.choices["colour"] == "bgr"
    mine = plan_of(_own("onnx_file", weights, folder, "model.card.preset=tf",
                        "model.card.mean=[0.1,0.2,0.3]"))  # fmt: skip
    assert mine.specs[0].variant.mean == (0.1, 0.2, 0.3)
    with pytest.raises(ValueError, match="unknown model.card.preset 'tensorflow'; valid: torch"):
        apply_preset({"preset": "tensorflow"})


@pytest.mark.slow
def test_the_readme_command_runs_verbatim(tmp_path, folder):
    """`evalharness model=onnx_file model.weights=M.onnx dataset=filename_labels
    dataset.root=DIR`, from an empty directory."""
    weights = colour_onnx(tmp_path / "M.onnx")
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "evalharness", *_own("onnx_file", weights, folder)],
        cwd=work, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "model onnx_file: 1000 classes, input 32x32, input 'x' NCHW (read from M.onnx)" in (
        r.stderr)  # fmt: skip
    (run,) = (work / "results").iterdir()
    summary = pd.read_csv(run / "summary.csv")
    assert summary.backend.tolist() == ["onnxruntime"]
    assert summary.top1.iloc[0] == pytest.approx(TOP1, abs=0.01)


def test_a_naming_that_fits_no_file_is_one_refusal(tmp_path, folder):
    from evalharness.data.dataset import load_dataset

    cfg = {"name": "filename_labels", "kind": "filename_labels", "root": str(folder)}
    with pytest.raises(
        ValueError,
        match=r"dataset.pattern '\(\?P<label>\[a-z\]\+\)_\\d\+\\.jpg' "
        r"matches no file name in .*\(7 image files, e.g. 'n01440764_0.JPEG'",
    ):
        load_dataset({**cfg, "pattern": r"(?P<label>[a-z]+)_\d+\.jpg"})  # fmt: skip
    other = tmp_path / "other"
    other.mkdir()
    _solid(other / "cat_1.jpg", (0, 0, 0))
    with pytest.raises(ValueError, match="no file name starts with an ImageNet synset"):
        load_dataset({**cfg, "root": str(other)})
    with pytest.raises(ValueError, match=f"no image files in {tmp_path / 'empty'}"):
        (tmp_path / "empty").mkdir()
        load_dataset({**cfg, "root": str(tmp_path / "empty")})


def test_imagenet_images_in_a_subfolder_are_found_and_named(tmp_path):
    from evalharness.data.dataset import load_dataset

    (tmp_path / "val").mkdir()
    _solid(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG", (0, 0, 0))
    (tmp_path / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG 65\n")
    (tmp_path / "synset_words.txt").write_text("n01440764 tench\n")
    cfg = {
        "name": "imagenet_val",
        "kind": "imagenet",
        "root": str(tmp_path),
        "labels": "val.txt",
        "images": ".",
        "synsets": "synset_words.txt",
        "num_classes": 1000,
        "missing": "skip",
    }
    with pytest.raises(
        FileNotFoundError,
        match=f"none of the 1 images val.txt lists is in "
        f"{tmp_path}; they are in {tmp_path / 'val'}: dataset.images=val",
    ):
        load_dataset(cfg)  # fmt: skip
    assert len(load_dataset({**cfg, "images": "val"}).samples) == 1


def test_an_ir_whose_bin_is_not_its_own_is_one_line_with_the_cause(tmp_path):
    """The .bin beside an IR replaced by another file (an ncnn .bin of the same name): the
    line names OpenVINO's cause, not its source location."""
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper

    from evalharness.models.fileinfo import openvino_info

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    ov.save_model(ov.Core().read_model(str(tmp_path / "m.onnx")), str(tmp_path / "net.xml"))
    (tmp_path / "net.bin").write_bytes(b"")
    with pytest.raises(ValueError) as e:
        openvino_info(tmp_path / "net.xml")
    assert "Incorrect weights in bin file" in str(e.value)
    assert "core.cpp" not in str(e.value) and "\n" not in str(e.value)
