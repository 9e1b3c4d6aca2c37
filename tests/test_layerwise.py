"""evalharness.layerwise on small generated models: a planted divergence is found where it
was planted, the observer check reports what exposing tensors did, QDQ tensors match the
float model's as onnxruntime's qdq_loss_debug matches them, and torch / OpenVINO read the
same tensors as onnxruntime. No real data; a few seconds on 2 cores."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evalharness.layerwise import (
    LayerGraph,
    OpenVinoProbe,
    OrtProbe,
    layer_divergence,
    nodes_for_layers,
    qdq_points,
    requantize_ort,
)
from evalharness.layerwise.divergence import observer_check
from evalharness.layerwise.metrics import per_image
from evalharness.layerwise.torch_probe import TorchProbe, module_path

HW = 16
PLANTED = "/conv2/Conv_output_0"  # conv2's own output in the export


class Tiny(nn.Module):
    """Four weighted layers, a BatchNorm the exporter folds, functional ReLUs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.fc(x.mean((2, 3)))


def tiny(seed: int = 0) -> Tiny:
    torch.manual_seed(seed)
    m = Tiny().eval()
    with torch.no_grad():
        m.bn1.running_mean.normal_(0, 0.1)
        m.bn1.running_var.uniform_(0.5, 1.5)
        m.fc.bias.zero_()  # else the bias decides the class of every random image
    return m


def export(module: nn.Module, path: Path) -> Path:
    """The project's export settings (legacy exporter, opset 17, dynamic batch)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, HW, HW),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    return path


def images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, HW, HW)).astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """fp32 export, the same with conv2's weights perturbed, and an int8 QDQ copy."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    tmp = tmp_path_factory.mktemp("layerwise")
    base = tiny()
    perturbed = tiny()
    with torch.no_grad():
        g = torch.Generator().manual_seed(7)
        w = perturbed.conv2.weight
        w.add_(torch.randn(w.shape, generator=g) * w.std() * 0.15)
    paths = {"fp32": export(base, tmp / "fp32.onnx"), "planted": export(perturbed, tmp / "b.onnx")}

    class Reader:
        def __init__(self) -> None:
            self.items = iter({"input": x[None]} for x in images(16, seed=3))

        def get_next(self):
            return next(self.items, None)

    quantize_static(
        str(paths["fp32"]),
        str(tmp / "int8.onnx"),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    paths["int8"] = tmp / "int8.onnx"
    return paths


def split_by_flip(a: OrtProbe, b: OrtProbe, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ta = next(iter(a.plain(x).values())).argmax(1)
    tb = next(iter(b.plain(x).values())).argmax(1)
    return x[ta != tb], x[ta == tb]


def test_planted_divergence_is_named_first(models):
    graph = LayerGraph.from_onnx(models["fp32"])
    a, b = OrtProbe(models["fp32"]), OrtProbe(models["planted"])
    flipped, control = split_by_flip(a, b, images(96))
    assert len(flipped) >= 5 and len(control) >= 5
    res = layer_divergence(a, b, flipped, control, graph, threshold=1e-3)
    assert res.parting_layer == PLANTED
    assert res.first_divergence[PLANTED] == len(flipped)  # every flipped image parts there
    upstream = res.table.loc[: res.table.index[res.table.index.get_loc(PLANTED) - 1]]
    assert (upstream["max_abs_flipped_p90"] == 0).all()  # identical before the planted layer
    assert res.top_added[0][0] == PLANTED
    assert res.first_difference == PLANTED and res.table.at[PLANTED, "differs_flipped"] == 1.0
    assert res.table.at[PLANTED, "step"] == "Conv"
    depth, total = res.table.at[PLANTED, "depth"], len(res.table)
    assert f"part at layer {PLANTED} (Conv, depth {depth} of {total})" in res.verdict
    assert res.observer[0].top1_changed == 0 and res.observer[1].top1_changed == 0
    assert set(res.images["set"]) == {"flipped", "control"}


def test_observer_check(models):
    x = images(32)
    fp32 = observer_check(OrtProbe(models["fp32"]), x)
    assert fp32.max_abs_diff <= 1e-5 and fp32.top1_changed == 0 and fp32.n_images == 32
    # QDQ: the QuantizeLinear outputs are exposed, so ORT's int8 fusion is untouched
    qdq = observer_check(OrtProbe(models["int8"]), x)
    assert qdq.exact and qdq.top1_changed == 0
    # one model per tensor: a check per tensor
    each = OpenVinoProbe(models["fp32"], mode="each")
    check = observer_check(each, x)
    assert set(check.per_group) == {t for t in each.exposed if each.plan[t].tensor}
    assert check.max_abs_diff <= 1e-5


def test_qdq_names_match_qdq_loss_debug(models, tmp_path):
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    qdq = onnx.load(str(models["int8"]))
    points = qdq_points(qdq)
    fp32_names = {o for n in onnx.load(str(models["fp32"])).graph.node for o in n.output}
    assert set(points) <= fp32_names | {"input"}
    assert {"/Relu_output_0", "logits"} <= set(points)  # 'logits': renamed *_QuantizeLinear_Input

    x = images(2, seed=5)
    augmented = tmp_path / "augmented.onnx"
    modify_model_output_intermediate_tensors(str(models["int8"]), str(augmented))
    acts = collect_activations(str(augmented), iter([{"input": x}]))
    matching = create_activation_matching(acts)
    assert set(matching) == set(points)

    # the dequantized QuantizeLinear outputs are qdq_loss_debug's post-QDQ tensors
    probe = OrtProbe(models["int8"], optimization="disable")
    seen, _ = probe.observe(x)
    for name in points:
        np.testing.assert_array_equal(seen[name].ravel(), matching[name]["post_qdq"][0])
    graph = LayerGraph.from_onnx(qdq)
    assert graph.qdq and set(graph.layers) == set(points)
    assert graph.step("/Relu_output_0", graph.layers).label == "Conv"  # Relu fused away


def test_fp32_vs_int8_names_and_unmatched(models):
    graph = LayerGraph.from_onnx(models["fp32"])
    a, b = OrtProbe(models["fp32"]), OrtProbe(models["int8"], graph.layers)
    res = layer_divergence(a, b, images(8), images(8, seed=2), graph)
    assert "/conv1/Conv_output_0" in res.unmatched_b  # no quantization point there
    assert "quantization point" in res.unmatched_b["/conv1/Conv_output_0"]
    assert res.table.at["/Relu_output_0", "step"] == "Conv+Relu"
    assert (res.table["rel_l2_control_med"] > 0).all()  # int8 differs everywhere


def test_torch_hooks_map_to_onnx_names(models):
    module = tiny()
    probe = TorchProbe(module, str(models["fp32"]))
    assert probe.map.modules["/conv1/Conv_output_0"] == "bn1"  # BatchNorm folded: followed
    assert probe.map.followed["/conv1/Conv_output_0"] == "conv1 -> bn1"
    assert probe.map.modules[PLANTED] == "conv2" and probe.map.modules["logits"] == "fc"
    assert "functional op" in probe.unexposed["/Relu_output_0"]
    x = images(8)
    seen, groups = probe.observe(x)
    ort_seen, _ = OrtProbe(models["fp32"]).observe(x)
    for name in probe.exposed:
        assert per_image(ort_seen[name], seen[name])["rel_l2"].max() < 1e-5, name
    assert module_path("/layer1/layer1.0/conv1/Conv", {"layer1", "layer1.0", "layer1.0.conv1"}) == (
        "layer1.0.conv1"
    )


def test_openvino_keeps_onnx_names(models):
    x = images(8)
    for name in ("fp32", "int8"):
        ov_probe, ort_probe = OpenVinoProbe(models[name]), OrtProbe(models[name])
        assert not ov_probe.unexposed
        assert set(ov_probe.exposed) == set(ort_probe.exposed)
    ov_seen, _ = OpenVinoProbe(models["fp32"]).observe(x)
    ort_seen, _ = OrtProbe(models["fp32"]).observe(x)
    for name, value in ort_seen.items():
        assert per_image(value, ov_seen[name])["rel_l2"].max() < 1e-5, name


def test_requantize_keeps_excluded_nodes_float(models, tmp_path):
    graph = LayerGraph.from_onnx(models["fp32"])
    nodes = nodes_for_layers(graph, [PLANTED], graph.layers, readers=False)
    assert nodes == ["/conv2/Conv"]
    assert nodes_for_layers(graph, [PLANTED], graph.layers) == ["/conv2/Conv", "/Relu_1"]
    assert nodes_for_layers(graph, ["input"], graph.layers) == ["/conv1/Conv"]  # its readers
    out = requantize_ort(models["fp32"], list(images(8, seed=3)), nodes, tmp_path / "q.onnx")
    model = onnx.load(str(out))
    inits = {i.name: i for i in model.graph.initializer}
    conv2 = next(n for n in model.graph.node if n.name == "/conv2/Conv")
    assert inits[conv2.input[1]].data_type == onnx.TensorProto.FLOAT  # weight stays float
    conv3 = next(n for n in model.graph.node if n.name == "/conv3/Conv")
    assert conv3.input[1] not in inits  # still quantized: a DequantizeLinear feeds it


def test_ncnn_aligns_weighted_layers(models, tmp_path):
    """pnnx keeps no name map: ncnn exposes the input, the Conv/Gemm outputs (Conv+ReLU
    fused: the ReLU's tensor) and the output, and names every other tensor unexposed."""
    import importlib.util
    import shutil
    import subprocess

    spec = importlib.util.find_spec("pnnx")
    if importlib.util.find_spec("ncnn") is None or spec is None:
        pytest.skip("ncnn and pnnx are not installed (pip install ncnn; pnnx --no-deps)")
    from evalharness.layerwise.ncnn_probe import NcnnProbe

    exe = Path(next(iter(spec.submodule_search_locations))) / "pnnx"
    shutil.copyfile(models["fp32"], tmp_path / "model.onnx")
    subprocess.run(
        [str(exe), "model.onnx", f"inputshape=[1,3,{HW},{HW}]", "fp16=0"],
        cwd=tmp_path, capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    probe = NcnnProbe(tmp_path / "model.ncnn.param", tmp_path / "model.ncnn.bin", models["fp32"])
    assert set(probe.exposed) == {"input", "/Relu_output_0", "/Relu_1_output_0",
                                  "/Relu_2_output_0", "logits"}  # fmt: skip
    assert "no name map" in probe.unexposed[PLANTED]
    x = images(4)
    seen, _ = probe.observe(x)
    ort_seen, _ = OrtProbe(models["fp32"]).observe(x)
    for name in probe.exposed:
        assert per_image(ort_seen[name], seen[name])["rel_l2"].max() < 1e-5, name
    assert observer_check(probe, x).exact


def test_different_host_tensors_part_at_the_input(models):
    """A and B may preprocess the same images differently: the input is then a layer."""
    graph = LayerGraph.from_onnx(models["fp32"])
    probe = OrtProbe(models["fp32"])
    x = images(16)
    shifted = x + np.float32(0.2)  # rel L2 about 0.2, above the 0.05 threshold
    res = layer_divergence(probe, probe, (x[:8], shifted[:8]), (x[8:], shifted[8:]), graph)
    assert res.parting_layer == "input" and res.table.at["input", "step"] == "Input"
    assert "part at layer input (Input, depth 1 of" in res.verdict


def test_nncf_ir_readsafter_fake_quantize(models, tmp_path):
    """An NNCF IR has no ONNX graph: tensors are found by the float export's names, and a
    quantized one is read after its FakeQuantize; an ignored node loses its quantizers."""
    pytest.importorskip("nncf")
    from evalharness.layerwise import requantize_nncf
    from evalharness.layerwise.probes import after_fake_quantize

    graph = LayerGraph.from_onnx(models["fp32"])
    calib = list(images(8, seed=3))
    plain = requantize_nncf(models["fp32"], calib, [], tmp_path / "plain")
    probe = OpenVinoProbe(plain, graph.layers)
    assert set(probe.exposed) == set(graph.layers) and not probe.unexposed
    seen, _ = probe.observe(images(2))
    assert len(np.unique(seen["/Relu_output_0"])) <= 256  # on the int8 grid: after the FQ
    assert len(np.unique(seen["/conv1/Conv_output_0"])) > 256  # a float conv output

    import openvino as ov

    def quantized(path: Path) -> set[str]:
        return set(after_fake_quantize(ov.Core().read_model(str(path))))

    ignored = requantize_nncf(models["fp32"], calib, ["/conv2/Conv"], tmp_path / "ignored")
    assert "/Relu_output_0" in quantized(plain) - quantized(ignored)  # conv2's input FQ gone
