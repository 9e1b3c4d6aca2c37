"""ncnn: intermediate blobs by extraction, aligned to ONNX names by structure.

pnnx keeps no name map. Converting an ONNX file, it renames every operator (`conv2d_0`,
`F.relu_3` in model.pnnx.param) and every blob (`in0`, `1`, `2`, ..., `out0` in
model.ncnn.param), fuses Conv+ReLU into one ncnn layer (`convrelu_0`) and inserts `Split`
layers; none of its output files records the ONNX tensor names (checked with pnnx
20261020 on ResNet-20). So a name map is not available, and this probe builds the one
that is defensible without it:

- the input and output blobs (pnnx names them in0 / out0, out1... in ONNX graph order);
- the weighted layers (Convolution, ConvolutionDepthWise, Deconvolution, InnerProduct)
  aligned in order with the ONNX graph's Conv / ConvTranspose / Gemm nodes, each pair
  checked on output channels and weight count; an ncnn layer with a fused activation
  (param 9) maps to the ONNX activation after the Conv. Any mismatch, and nothing is
  aligned (the reason is given).

Every other tensor (Add, ReLU alone, pooling, padding...) is listed as unexposed with that
reason. Extracting a blob does not change what ncnn computes (the net is already optimized
at load; the extractor only keeps the blob), and the observer check measures it anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from evalharness.layerwise.graph import LayerGraph
from evalharness.layerwise.probes import ALL, Observation, input_name, load_onnx

# fp32 as the ncnn backend runs it: ncnn's own default turns fp16 storage/arithmetic on
FP32_OPTIONS = dict(
    use_fp16_storage=False,
    use_fp16_packed=False,
    use_fp16_arithmetic=False,
    use_bf16_storage=False,
    use_bf16_packed=False,
)
WEIGHTED_NCNN = frozenset(
    {"Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise",
     "InnerProduct"}
)  # fmt: skip
WEIGHTED_ONNX = frozenset({"Conv", "ConvTranspose", "Gemm"})
ACTIVATIONS = frozenset({"Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSwish", "Mish"})
NO_MAP = "pnnx keeps no name map: only inputs, outputs and Conv/Gemm layers are aligned"


@dataclass(frozen=True)
class NcnnLayer:
    kind: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: Mapping[str, str] = field(default_factory=dict)


def read_layers(param: Path) -> list[NcnnLayer]:
    """The layers of an ncnn .param, in file (topological) order."""
    lines = [ln.split() for ln in Path(param).read_text().splitlines() if ln.strip()]
    if not lines or lines[0][0] != "7767517":
        raise ValueError(f"{param} is not an ncnn .param file (no 7767517 magic)")
    layers = []
    for f in lines[2:]:
        n_in, n_out = int(f[2]), int(f[3])
        rest = f[4 + n_in + n_out :]
        params = dict(kv.split("=", 1) for kv in rest if "=" in kv)
        bottoms, tops = tuple(f[4 : 4 + n_in]), tuple(f[4 + n_in : 4 + n_in + n_out])
        layers.append(NcnnLayer(f[0], f[1], bottoms, tops, params))
    return layers


def _onnx_weighted(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, int, int]]:
    """(node, output channels, weight count) of each weighted node, in graph order."""
    inits = {i.name: i for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_ONNX or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        if node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            channels = w.shape[0] if trans_b else w.shape[1]
        elif node.op_type == "ConvTranspose":
            channels = w.shape[1]
        else:
            channels = w.shape[0]
        out.append((node, int(channels), int(w.size)))
    return out


def _activation_after(model: onnx.ModelProto, tensor: str) -> str | None:
    consumers = [n for n in model.graph.node if tensor in n.input]
    if len(consumers) == 1 and consumers[0].op_type in ACTIVATIONS:
        return consumers[0].output[0]
    return None


def ncnn_name_map(
    model: onnx.ModelProto, layers: Sequence[NcnnLayer]
) -> tuple[dict[str, str], str | None]:
    """ONNX tensor -> ncnn blob for what can be aligned, and why alignment failed (or None)."""
    blobs: dict[str, str] = {}
    inputs = [lay.tops[0] for lay in layers if lay.kind == "Input"]
    if len(inputs) == 1:
        blobs[input_name(model)] = inputs[0]
    outs = [f"out{i}" for i in range(len(model.graph.output))]
    produced = {t for lay in layers for t in lay.tops}
    if all(o in produced for o in outs):
        blobs.update({o.name: b for o, b in zip(model.graph.output, outs, strict=True)})
    ours = [lay for lay in layers if lay.kind in WEIGHTED_NCNN]
    theirs = _onnx_weighted(model)
    if len(ours) != len(theirs):
        return blobs, f"{len(ours)} weighted ncnn layers vs {len(theirs)} ONNX Conv/Gemm nodes"
    aligned: dict[str, str] = {}
    for lay, (node, channels, size) in zip(ours, theirs, strict=True):
        size_key = "2" if lay.kind == "InnerProduct" else "6"  # weight_data_size
        if int(lay.params.get("0", -1)) != channels or int(lay.params.get(size_key, -1)) != size:
            return blobs, f"ncnn layer {lay.name} does not match ONNX node {node.name} in shape"
        tensor = node.output[0]
        if lay.params.get("9", "0") != "0":  # activation fused into the ncnn layer
            tensor = _activation_after(model, tensor)
            if tensor is None:
                return blobs, f"ncnn layer {lay.name} fuses an activation ONNX does not have"
        aligned.setdefault(tensor, lay.tops[0])
    return {**aligned, **blobs}, None


class NcnnProbe:
    """ncnn with the aligned blobs extracted (one image at a time: a Mat has no batch)."""

    runtime = "ncnn"

    def __init__(
        self,
        param: str | Path,
        binf: str | Path,
        onnx_model: onnx.ModelProto | str | Path,
        layers: Sequence[str] | None = None,
        *,
        threads: int = 1,
        options: Mapping[str, bool] | None = None,
    ) -> None:
        import ncnn

        self.ncnn = ncnn
        proto = load_onnx(onnx_model)
        wanted = list(LayerGraph.from_onnx(proto).layers if layers is None else layers)
        blobs, failure = ncnn_name_map(proto, read_layers(Path(param)))
        self.plan = {t: blobs[t] for t in wanted if t in blobs}
        reason = NO_MAP + (f" ({failure})" if failure else "")
        self.unexposed = {t: reason for t in wanted if t not in blobs}
        self.exposed = tuple(self.plan)
        self.output_names = [o.name for o in proto.graph.output]
        self.in_blob = blobs.get(input_name(proto), "in0")
        self.out_blobs = [f"out{i}" for i in range(len(self.output_names))]
        self.net = ncnn.Net()
        self.net.opt.num_threads = threads
        for key, value in dict(FP32_OPTIONS, **(options or {})).items():
            setattr(self.net.opt, key, value)
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(binf)) != 0:
            raise ValueError(f"ncnn cannot load {param}")

    def group_of(self, name: str) -> str:
        return ALL

    def _run(self, batch: np.ndarray, blobs: Sequence[str]) -> dict[str, np.ndarray]:
        per_image = []
        for x in batch:
            ex = self.net.create_extractor()
            ex.input(self.in_blob, self.ncnn.Mat(np.ascontiguousarray(x, dtype=np.float32)))
            got = {}
            for blob in blobs:
                ret, mat = ex.extract(blob)
                if ret != 0:
                    raise ValueError(f"ncnn could not compute blob '{blob}' (code {ret})")
                got[blob] = np.array(mat, dtype=np.float32)
            per_image.append(got)
        return {b: np.stack([g[b] for g in per_image]) for b in blobs}

    def observe(self, batch: np.ndarray) -> Observation:
        blobs = list(dict.fromkeys([*self.plan.values(), *self.out_blobs]))
        raw = self._run(batch, blobs)
        seen = {t: raw[b].reshape(len(batch), -1) for t, b in self.plan.items()}
        finals = {n: raw[b] for n, b in zip(self.output_names, self.out_blobs, strict=True)}
        return seen, {ALL: finals}

    def plain(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        raw = self._run(batch, self.out_blobs)
        return {n: raw[b] for n, b in zip(self.output_names, self.out_blobs, strict=True)}
