"""Probes: run a deployed model and read its intermediate tensors, named as in the reference
ONNX graph, with each runtime's own maintained means.

- onnxruntime: the tensors become graph outputs (types from ONNX shape inference; an untyped
  tensor is listed, not exposed). For a QDQ model the QuantizeLinear outputs are exposed and
  dequantized on the host (qdq.py says why: ORT's int8 fusion stays intact).
- OpenVINO: `Model.add_outputs` on the read model. OpenVINO keeps ONNX tensor names, so the
  same names are looked up; a name it lost is listed. On an NNCF IR the quantized value of a
  tensor is the output of the FakeQuantize NNCF put on it, which has no tensor name: it is
  found by its input's name.
- torch (torch_probe.py) and ncnn (ncnn_probe.py) live beside this module.

A probe never drops a requested tensor silently: what it cannot expose is in `unexposed`,
with the reason. Adding outputs can change what a runtime fuses and therefore its numbers,
so every probe runs the unmodified model too (`plain`): the observer check compares them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
from onnx import helper

from evalharness.layerwise.graph import LayerGraph
from evalharness.layerwise.qdq import QdqPoint, qdq_points

Arrays = dict[str, np.ndarray]
# (tensors by reference name, final outputs per observation group)
Observation = tuple[Arrays, dict[str, Arrays]]


class Probe(Protocol):
    """A loaded deployment whose intermediate tensors can be read by reference name.

    `observe` returns the tensors and, per observation group, the final outputs of the model
    that exposed them: one group ("all") when every tensor is exposed at once, one group per
    tensor when the probe compiles a model per tensor (mode "each"), so that the observer
    check can say which tensors were read from an unchanged deployment.
    """

    runtime: str
    exposed: tuple[str, ...]
    unexposed: Mapping[str, str]

    def observe(self, batch: np.ndarray) -> Observation: ...

    def plain(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Final outputs of the unmodified model (the deployment as it really runs)."""
        ...

    def group_of(self, name: str) -> str:
        """The observation group that exposes `name`."""
        ...


ALL = "all"
MODES = ("all", "each")


def groups_for(names: Sequence[str], mode: str) -> dict[str, list[str]]:
    """Observation groups: every tensor in one model ("all") or one model per tensor."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got '{mode}'")
    return {ALL: list(names)} if mode == ALL else {n: [n] for n in names}


@dataclass(frozen=True)
class ObserverCheck:
    """How much exposing intermediate tensors moved the final outputs of one probe.

    max_abs_diff and top1_changed are the worst over observation groups; `per_group` holds
    each group's max |diff| (one entry "all", or one per tensor in mode "each").
    """

    runtime: str
    max_abs_diff: float
    top1_changed: int
    n_images: int
    per_group: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def exact(self) -> bool:
        return self.max_abs_diff == 0.0

    def describe(self) -> str:
        what = "bit-identical" if self.exact else f"max |diff| {self.max_abs_diff:.3g}"
        return (
            f"{self.runtime}: outputs with extra outputs vs without: {what}, top-1 changed on "
            f"{self.top1_changed} of {self.n_images} images"
        )


@dataclass(frozen=True)
class Source:
    """Where a probe reads one reference tensor: a model tensor, maybe to dequantize."""

    tensor: str  # the name in the model ("" for the graph input itself)
    point: QdqPoint | None = None
    elem_type: int = onnx.TensorProto.FLOAT

    def value(self, raw: np.ndarray) -> np.ndarray:
        out = self.point.dequantize(raw) if self.point is not None else raw
        return np.asarray(out, dtype=np.float32)


def load_onnx(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))


def input_name(model: onnx.ModelProto) -> str:
    """The model's one real input (probes feed a single host batch, as the engine does)."""
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if len(names) != 1:
        raise ValueError(f"layerwise probes take models with one input, this one has {names}")
    return names[0]


def onnx_plan(
    model: onnx.ModelProto, graph: LayerGraph, wanted: Sequence[str]
) -> tuple[dict[str, Source], dict[str, str]]:
    """Where each wanted tensor is read in this ONNX model, and why the others cannot be."""
    points = qdq_points(model) if graph.qdq else {}
    types = graph.types
    inp = input_name(model)
    plan: dict[str, Source] = {}
    unexposed: dict[str, str] = {}
    for name in wanted:
        if name == inp and not graph.qdq:
            plan[name] = Source("")
        elif graph.qdq:
            if name in points:
                p = points[name]
                plan[name] = Source(p.q_output, p, _onnx_type(p.zero_point))
            else:
                unexposed[name] = "no quantization point in the QDQ model (float or fused away)"
        elif name in graph.untyped:
            unexposed[name] = "ONNX shape inference cannot infer its type"
        elif name not in graph.producer:
            unexposed[name] = "no such tensor in the graph"
        elif name not in graph.float_tensors:
            unexposed[name] = "not a float tensor"
        else:
            plan[name] = Source(name, None, types.get(name, onnx.TensorProto.FLOAT))
    return plan, unexposed


def _onnx_type(array: np.ndarray) -> int:
    return helper.np_dtype_to_tensor_dtype(np.asarray(array).dtype)


def with_outputs(model: onnx.ModelProto, plan: Mapping[str, Source]) -> onnx.ModelProto:
    """A copy of the model whose graph outputs also hold every planned tensor."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    have = {o.name for o in out.graph.output}
    for src in plan.values():
        if src.tensor and src.tensor not in have:
            out.graph.output.append(helper.make_tensor_value_info(src.tensor, src.elem_type, None))
            have.add(src.tensor)
    return out


def _pick(plan: Mapping[str, Source], batch: np.ndarray, raw: Mapping[str, np.ndarray]):
    return {name: src.value(raw[src.tensor] if src.tensor else batch) for name, src in plan.items()}


ORT_LEVELS = ("all", "extended", "basic", "disable")


class _Grouped:
    """What ORT and OpenVINO probes share: a plan, observation groups and their runners."""

    runtime = ""
    plan: dict[str, Source]
    unexposed: dict[str, str]
    exposed: tuple[str, ...]
    output_names: list[str]

    def _set_groups(self, mode: str, build) -> None:
        """`build(names)` -> a runner `batch -> (raw tensors by model name, finals)`."""
        self._groups = groups_for([k for k in self.plan if self.plan[k].tensor], mode)
        self._runners = {g: build(names) for g, names in self._groups.items() if names}
        self._group_of = {n: g for g, names in self._groups.items() for n in names}

    def group_of(self, name: str) -> str:
        return self._group_of.get(name, ALL)

    def observe(self, batch: np.ndarray) -> Observation:
        raw: dict[str, np.ndarray] = {}
        finals: dict[str, dict[str, np.ndarray]] = {}
        for group, run in self._runners.items():
            got, finals[group] = run(batch)
            raw.update(got)
        if not finals:  # nothing but the graph input was asked for
            finals[ALL] = self.plain(batch)
        return _pick(self.plan, batch, raw), finals

    def plain(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError


class OrtProbe(_Grouped):
    """onnxruntime with the planned tensors added as graph outputs.

    `optimization` is ORT's graph optimization level: "all" (the default, what the engine's
    sessions run) observes the deployment; "disable" is qdq_loss_debug's setting (QDQ then
    runs as float simulation, not as the int8 kernels). `mode` "each" builds one session
    per tensor (see Probe).
    """

    runtime = "onnxruntime"

    def __init__(
        self,
        model: onnx.ModelProto | str | Path,
        layers: Sequence[str] | None = None,
        *,
        threads: int = 1,
        optimization: str = "all",
        mode: str = ALL,
    ) -> None:
        self.proto = load_onnx(model)
        self.graph = LayerGraph.from_onnx(self.proto)
        wanted = list(self.graph.layers if layers is None else layers)
        self.plan, self.unexposed = onnx_plan(self.proto, self.graph, wanted)
        self.exposed = tuple(self.plan)
        self.input = input_name(self.proto)
        self._plain = _ort_session(self.proto, threads, optimization)
        self.output_names = [o.name for o in self._plain.get_outputs()]

        def build(names: list[str]):
            plan = {n: self.plan[n] for n in names}
            sess = _ort_session(with_outputs(self.proto, plan), threads, optimization)
            outs = [o.name for o in sess.get_outputs()]

            def run(batch: np.ndarray):
                raw = dict(zip(outs, sess.run(None, {self.input: batch}), strict=True))
                return raw, {n: raw[n] for n in self.output_names}

            return run

        self._set_groups(mode, build)

    def why(self, name: str) -> str:
        """Why this model cannot expose `name` (for names it was not asked for)."""
        return onnx_plan(self.proto, self.graph, [name])[1].get(name, "not requested")

    def plain(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outs = self._plain.run(None, {self.input: batch})
        return dict(zip(self.output_names, outs, strict=True))


def _ort_session(model: onnx.ModelProto, threads: int, optimization: str):
    """A session set up as the engine's (fixed threads, sequential, quiet)."""
    import onnxruntime as ort

    if optimization not in ORT_LEVELS:
        raise ValueError(f"optimization must be one of {ORT_LEVELS}, got '{optimization}'")
    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = levels[optimization]
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


class OpenVinoProbe(_Grouped):
    """OpenVINO with the planned tensors added as model outputs (`Model.add_outputs`).

    An ONNX file (float or QDQ) is planned as for onnxruntime, then each name is looked up
    in the read model. An IR (e.g. NNCF's int8) has no ONNX graph: `layers` names the
    reference tensors (the float export's), and a tensor NNCF quantized is read after its
    FakeQuantize, the value the next layer consumes. `config` is the compile config; the
    default pins f32 inference precision as the backend does (the CPU plugin otherwise runs
    bf16 on CPUs that have it). Mode "each" compiles one model per tensor: on an int8 model
    an extra output can stop OpenVINO's low-precision fusions (ResNet-20 QDQ: the logits
    move by up to 0.58 with every tensor exposed), while most single tensors leave them be.
    """

    runtime = "openvino"

    def __init__(
        self,
        path: str | Path,
        layers: Sequence[str] | None = None,
        *,
        threads: int = 1,
        config: Mapping[str, object] | None = None,
        mode: str = ALL,
    ) -> None:
        import openvino as ov

        path = Path(path)
        self.core = ov.Core()
        self.config = dict(config or {"INFERENCE_PRECISION_HINT": "f32"})
        self.config.setdefault("INFERENCE_NUM_THREADS", threads)
        read = self.core.read_model(str(path))
        self.proto: onnx.ModelProto | None = None
        if path.suffix == ".onnx":
            self.proto = onnx.load(str(path))
            self.graph: LayerGraph | None = LayerGraph.from_onnx(self.proto)
            wanted = list(self.graph.layers if layers is None else layers)
            plan, self.unexposed = onnx_plan(self.proto, self.graph, wanted)
            lost = _ov_lost(read, plan)
        else:
            if layers is None:
                raise ValueError("an IR has no ONNX graph: name the reference layers")
            self.graph = None
            plan, lost = _ov_ir_plan(read, list(layers))
            self.unexposed = {}
        self.unexposed.update(lost)
        self.plan = {k: v for k, v in plan.items() if k not in lost}
        self.exposed = tuple(self.plan)
        self._plain = self.core.compile_model(read, "CPU", self.config)
        self.output_names = [_ov_name(o, i) for i, o in enumerate(self._plain.outputs)]
        self._set_groups(mode, lambda names: self._build(path, names))

    def _build(self, path: Path, names: list[str]):
        model = self.core.read_model(str(path))
        targets = _ov_targets(model, [self.plan[n] for n in names])
        model.add_outputs(targets)
        # OpenVINO adds one Result per distinct output: two names on one tensor share it
        slot = {_port(r.get_node().input(0).get_source_output()): i
                for i, r in enumerate(model.outputs)}  # fmt: skip
        where = {self.plan[n].tensor: slot[_port(t)] for n, t in zip(names, targets, strict=True)}
        compiled = self.core.compile_model(model, "CPU", self.config)

        def run(batch: np.ndarray):
            values = list(compiled.create_infer_request().infer({0: batch}).values())
            # copies: a view would keep the request, and every buffer it holds, alive (one per
            # group in mode "each": 3 GB for EfficientNet-Lite0 at 8 images)
            raw = {t: np.array(values[i]) for t, i in where.items()}
            return raw, {n: np.array(values[i]) for i, n in enumerate(self.output_names)}

        return run

    def why(self, name: str) -> str:
        if self.proto is None or self.graph is None:
            return "not requested"
        return onnx_plan(self.proto, self.graph, [name])[1].get(name, "not requested")

    def plain(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        res = self._plain.create_infer_request().infer({0: batch})
        return {n: np.array(v) for n, v in zip(self.output_names, res.values(), strict=True)}


def _port(output) -> tuple[str, int]:
    """An OpenVINO output's identity: its node's name and the port index."""
    return output.get_node().get_friendly_name(), output.get_index()


def _ov_name(output, i: int) -> str:
    try:
        return output.get_any_name()
    except RuntimeError:  # an output without a tensor name
        return f"output{i}"


def _ov_outputs_by_name(model) -> dict[str, object]:
    found = {}
    for op in model.get_ordered_ops():
        for out in op.outputs():
            for name in out.get_names():
                found.setdefault(name, out)
    return found


def _ov_lost(model, plan: Mapping[str, Source]) -> dict[str, str]:
    """The planned tensors whose ONNX name OpenVINO did not keep."""
    by_name = _ov_outputs_by_name(model)
    return {
        name: f"OpenVINO keeps no tensor named '{src.tensor}' after reading the model"
        for name, src in plan.items()
        if src.tensor and src.tensor not in by_name
    }


IR_PREFIX = "ov:"


def after_fake_quantize(model: Any) -> dict[str, Any]:
    """Tensor name -> the output of the FakeQuantize applied to it (NNCF's int8 value)."""
    found = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            for name in op.input(0).get_source_output().get_names():
                found.setdefault(name, op.output(0))
    return found


def _ov_ir_plan(model, layers: list[str]) -> tuple[dict[str, Source], dict[str, str]]:
    """Plan for an IR: the FakeQuantize after a named tensor if there is one, else the tensor."""
    known = set(_ov_outputs_by_name(model)) | set(after_fake_quantize(model))
    plan, lost = {}, {}
    for name in layers:
        if name in known:
            plan[name] = Source(IR_PREFIX + name)
        else:
            lost[name] = "the IR keeps no tensor of that name (fused or renamed)"
    return plan, lost


def _ov_targets(model, sources: Sequence[Source]) -> list:
    """The OpenVINO outputs to add for these sources, found in this (fresh) model."""
    by_name, after_fq = _ov_outputs_by_name(model), after_fake_quantize(model)
    targets = []
    for src in sources:
        if src.tensor.startswith(IR_PREFIX):
            name = src.tensor[len(IR_PREFIX) :]
            targets.append(after_fq.get(name, by_name.get(name)))
        else:
            targets.append(by_name[src.tensor])
    return targets
