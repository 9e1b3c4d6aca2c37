"""The reference graph of a layerwise comparison: which tensors are layers, in which order,
and which nodes make up each layer's own step.

Two runs are compared on the tensors both can expose, named as in one ONNX graph (the
float export, or a QDQ model read as its float view). The graph gives the order ("first
layer whose error exceeds..."), the op a verdict names, and, for "error added by a layer",
the nodes between a compared tensor and the nearest compared tensors upstream: when a
runtime fuses Conv+Relu, or a QDQ model has no quantization point after a Conv, the step
of the next compared tensor holds both nodes, so the error it adds is attributed to both.

Types come from ONNX shape inference: only float tensors are layers (shape arithmetic in
int64 is not), and a node output whose type inference cannot give is listed (`untyped`)
instead of being dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto
from onnxruntime.quantization.quant_utils import DEQUANT_OP_NAME, QUANT_OP_NAME

from evalharness.layerwise.qdq import is_qdq, qdq_aliases, qdq_points

FLOAT_TYPES = frozenset(
    {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
)
NOT_A_LAYER_OPS = frozenset({"Constant", QUANT_OP_NAME, DEQUANT_OP_NAME})


@dataclass(frozen=True)
class Node:
    """One ONNX node as the float view sees it (QDQ renamings undone)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    index: int  # position in the graph's (topologically sorted) node list


@dataclass(frozen=True)
class Step:
    """What a compared tensor adds: its nodes, and the compared tensors it starts from."""

    nodes: tuple[Node, ...]
    parents: tuple[str, ...]

    @property
    def label(self) -> str:
        """The step's ops in order, e.g. 'Conv+Relu'."""
        return "+".join(n.op for n in self.nodes) or "Input"


@dataclass(frozen=True)
class LayerGraph:
    """Layers (candidate tensors) of an ONNX graph, in topological order."""

    layers: tuple[str, ...]
    producer: Mapping[str, Node] = field(repr=False)
    inputs: tuple[str, ...]
    untyped: tuple[str, ...]  # node outputs whose type shape inference could not infer
    float_tensors: frozenset[str] = field(repr=False)
    qdq: bool = False
    types: Mapping[str, int] = field(default_factory=dict, repr=False)  # ONNX elem types

    @classmethod
    def from_onnx(cls, model: onnx.ModelProto | str | Path) -> LayerGraph:
        """The layer graph of a float model, or of a QDQ model's float view.

        Float model: every float node output is a layer (and every output whose type shape
        inference cannot give: listed in `untyped`, for the probes to name). QDQ model: the
        quantization points
        (the activations an int8 runtime materializes) are the layers, named as in the float
        model, so an fp32 run and an int8 run of the same network share names.
        """
        if not isinstance(model, onnx.ModelProto):
            model = onnx.load(str(model))
        types = tensor_types(model)
        inits = {i.name for i in model.graph.initializer}
        inputs = tuple(i.name for i in model.graph.input if i.name not in inits)
        qdq = is_qdq(model)
        aliases = qdq_aliases(model) if qdq else {}
        nodes = _float_view(model, aliases, inits)
        producer = {out: n for n in nodes for out in n.outputs}
        floats = {aliases.get(t, t) for t, et in types.items() if et in FLOAT_TYPES}
        floats |= {i for i in inputs if types.get(i) in FLOAT_TYPES}
        if qdq:
            points = qdq_points(model)
            untyped: list[str] = []
            candidates = [t for t in producer if t in points]
        else:  # an untyped tensor stays a layer: each probe then says what it can do with it
            untyped = [t for t in producer if t not in types]
            candidates = [t for t in producer if t in floats or t not in types]
        order = {t: producer[t].index for t in candidates}
        layers = [i for i in inputs if i in floats and (not qdq or i in points)]
        layers += sorted(candidates, key=lambda t: (order[t], t))
        return cls(tuple(layers), producer, inputs, tuple(untyped), frozenset(floats), qdq, types)

    def op(self, name: str) -> str:
        node = self.producer.get(name)
        return node.op if node else "Input"

    def step(self, name: str, compared: Iterable[str]) -> Step:
        """The nodes between `name` and the nearest compared tensors upstream of it.

        Walks back from the tensor's producer through tensors that are not compared, over
        float tensors only (shape arithmetic feeding a Pad or Reshape is not the layer).
        """
        compared = set(compared)
        nodes: dict[str, Node] = {}
        parents: list[str] = []
        stack = [name]
        while stack:
            node = self.producer.get(stack.pop())
            if node is None or node.name in nodes:
                continue
            nodes[node.name] = node
            for t in node.inputs:
                if t in compared or t in self.inputs:
                    if t in compared and t not in parents:
                        parents.append(t)
                elif t in self.producer and t in self.float_tensors:
                    stack.append(t)
        ordered = tuple(sorted(nodes.values(), key=lambda n: n.index))
        return Step(ordered, tuple(parents))


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Tensor name -> ONNX element type, from shape inference (a model it cannot process,
    e.g. with custom ops, keeps the types its file records)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference raises on some custom ops: fall back to recorded types
        inferred = model
    g = inferred.graph
    values = [*g.value_info, *g.input, *g.output]
    return {v.name: v.type.tensor_type.elem_type for v in values if v.type.HasField("tensor_type")}


def _float_view(model: onnx.ModelProto, aliases: dict[str, str], inits: set[str]) -> list[Node]:
    """The graph's nodes without Q/DQ and Constant nodes, QDQ names read as float names."""
    nodes = []
    for i, node in enumerate(model.graph.node):
        if node.op_type in NOT_A_LAYER_OPS:
            continue
        ins = tuple(aliases.get(t, t) for t in node.input if t and t not in inits)
        outs = tuple(aliases.get(t, t) for t in node.output if t)
        nodes.append(Node(node.name or outs[0], node.op_type, ins, outs, i))
    return nodes
