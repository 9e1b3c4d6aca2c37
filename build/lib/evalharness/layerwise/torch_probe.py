"""torch: intermediate tensors from forward hooks, named as in the module's ONNX export.

The TorchScript exporter names each node after the module scope it ran in
(`/layer1/layer1.0/conv1/Conv`: module `layer1.0.conv1`), so a module's output is the one
float tensor that its scope's nodes hand to nodes outside the scope. How exact the map is:

- exact at module boundaries: the hooked tensor is the module's forward output, the ONNX
  tensor is what the same scope's nodes produce; a test checks they agree to float32
  rounding (torch vs onnxruntime, fp32);
- a BatchNorm that the exporter folded into the preceding Conv has no node: the Conv's
  tensor then holds the BatchNorm's output, and the map follows the Conv's output into the
  BatchNorm (the very tensor object it consumed, seen by the hooks on one forward pass);
- a functional op (`F.relu`, `+`) belongs to no module, so no hook sees its output: those
  tensors are listed as unexposed, with the module whose forward computed them;
- a module called more than once per forward (weight sharing) is ambiguous: unexposed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

from evalharness.layerwise.graph import LayerGraph
from evalharness.layerwise.probes import ALL, Observation, input_name, load_onnx


@dataclass(frozen=True)
class TorchMap:
    """ONNX tensor -> the module whose forward output it is; and what has no module."""

    modules: Mapping[str, str]
    unmapped: Mapping[str, str]  # ONNX tensor -> why no hook can read it
    followed: Mapping[str, str]  # ONNX tensor -> "conv1 -> bn1" (folded BatchNorm followed)


def module_path(node_name: str, known: set[str]) -> str:
    """The module path of an exported node's scope ('' for the top level).

    Scope segments are either relative ('conv1' inside 'layer1.0') or already qualified
    ('layer1.0' inside 'layer1'); a path that is no module of the model is cut back to the
    deepest prefix that is.
    """
    segments = [s for s in node_name.split("/")[:-1] if s]
    path = ""
    for seg in segments:
        nxt = seg if (not path or seg.startswith(path + ".")) else f"{path}.{seg}"
        if nxt not in known:
            break
        path = nxt
    return path


def _scope_outputs(graph: LayerGraph, scopes: dict[str, str]) -> dict[str, list[str]]:
    """module path -> the float tensors its scope's nodes hand outside (or to the output)."""
    consumers: dict[str, list[str]] = defaultdict(list)
    for node in {n.name: n for n in graph.producer.values()}.values():
        for t in node.inputs:
            consumers[t].append(node.name)
    leaving: dict[str, list[str]] = defaultdict(list)
    for tensor, node in graph.producer.items():
        if tensor not in graph.float_tensors:
            continue
        path = scopes[node.name]
        while path:
            inside = [c for c in consumers[tensor] if _within(scopes[c], path)]
            if len(inside) < len(consumers[tensor]) or not consumers[tensor]:
                leaving[path].append(tensor)
            path = path.rpartition(".")[0]
    return leaving


def _prefixes(path: str) -> list[str]:
    """'a.b.c' -> ['a', 'a.b', 'a.b.c'] (every module whose scope holds the node)."""
    parts = path.split(".") if path else []
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _within(scope: str, path: str) -> bool:
    return scope == path or scope.startswith(path + ".")


def _trace(module: nn.Module, sample: torch.Tensor):
    """One forward pass: per module, the ids of its input and output tensors and its calls."""
    ins: dict[str, set[int]] = defaultdict(set)
    outs: dict[str, int] = {}
    calls: Counter = Counter()
    keep: list = []  # holds every tensor seen so that no id() is reused during the pass
    handles = []
    for name, mod in module.named_modules():

        def hook(_m, args, output, name=name):
            calls[name] += 1
            keep.append((args, output))
            ins[name].update(id(a) for a in args if isinstance(a, torch.Tensor))
            if isinstance(output, torch.Tensor):
                outs[name] = id(output)

        handles.append(mod.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            module(sample)
    finally:
        for h in handles:
            h.remove()
    return ins, outs, calls


def torch_onnx_map(
    module: nn.Module, onnx_model: onnx.ModelProto, sample: torch.Tensor
) -> TorchMap:
    """The module for each layer of the export (see the module docstring for exactness)."""
    graph = LayerGraph.from_onnx(onnx_model)
    known = {n for n, _ in module.named_modules()}
    scopes = {n.name: module_path(n.name, known) for n in graph.producer.values()}
    owned = {p for scope in scopes.values() for p in _prefixes(scope)}
    owner: dict[str, str] = {}
    for path, tensors in _scope_outputs(graph, scopes).items():
        if len(tensors) == 1 and len(path) > len(owner.get(tensors[0], "")):
            owner[tensors[0]] = path
    ins, outs, calls = _trace(module, sample)
    folded = _folded(module, owned)
    modules, followed, unmapped = {}, {}, {}
    for tensor, path in owner.items():
        if calls[path] != 1:
            unmapped[tensor] = f"module '{path}' runs {calls[path]} times per forward"
            continue
        end = _follow_folded(path, ins, outs, folded)
        modules[tensor] = end
        if end != path:
            followed[tensor] = f"{path} -> {end}"
    for tensor in graph.layers:
        if tensor not in modules and tensor not in unmapped:
            unmapped[tensor] = _why_unmapped(tensor, graph, scopes, onnx_model)
    return TorchMap(modules, unmapped, followed)


def _folded(module: nn.Module, owned: set[str]) -> set[str]:
    """Leaf modules with weights or buffers but no node in the export: folded away (a
    BatchNorm into its Conv). An Identity has no state: nothing to follow into."""
    out = set()
    for name, mod in module.named_modules():
        leaf = not any(True for _ in mod.children())
        state = any(True for _ in mod.parameters(recurse=False)) or any(
            True for _ in mod.buffers(recurse=False)
        )
        if name and leaf and state and name not in owned:
            out.add(name)
    return out


def _follow_folded(path: str, ins, outs, folded: set[str]) -> str:
    """Follow a module's output into the folded module that consumed it, if exactly one."""
    seen = {path}
    while path in outs:
        nxt = [m for m in folded if m not in seen and m in outs and outs[path] in ins.get(m, ())]
        if len(nxt) != 1:
            return path
        path = nxt[0]
        seen.add(path)
    return path


def _why_unmapped(tensor: str, graph: LayerGraph, scopes, model: onnx.ModelProto) -> str:
    if tensor == input_name(model):
        return "the graph input (the host batch itself)"
    node = graph.producer.get(tensor)
    if node is None:
        return "no node produces it"
    where = scopes.get(node.name, "")
    inside = f"inside module '{where}'" if where else "at the top level"
    return f"{node.op} computed {inside} by a functional op: no module output, no hook"


class TorchProbe:
    """An eager torch module with forward hooks on the modules the ONNX names map to."""

    runtime = "torch"

    def __init__(
        self,
        module: nn.Module,
        onnx_model: onnx.ModelProto | str,
        layers: Sequence[str] | None = None,
        *,
        sample: np.ndarray | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        proto = load_onnx(onnx_model)
        self.module = module.eval()
        self.dtype = dtype
        self.output_names = [o.name for o in proto.graph.output]
        x = torch.from_numpy(_sample(proto) if sample is None else sample[:1])
        self.map = torch_onnx_map(self.module, proto, x)
        wanted = list(LayerGraph.from_onnx(proto).layers if layers is None else layers)
        self.unexposed = {t: self.map.unmapped.get(t, "no module") for t in wanted}
        self.plan = {t: self.map.modules[t] for t in wanted if t in self.map.modules}
        for t in self.plan:
            self.unexposed.pop(t)
        self.input = input_name(proto)
        if self.input in wanted:
            self.unexposed.pop(self.input, None)
            self.plan = {self.input: "", **self.plan}
        self.exposed = tuple(self.plan)

    def _forward(self, batch: np.ndarray) -> list[torch.Tensor]:
        x = torch.from_numpy(batch).to(self.dtype)
        with torch.inference_mode():
            out = self.module(x)
        return [out] if isinstance(out, torch.Tensor) else list(out)

    def _finals(self, outs: list[torch.Tensor]) -> dict[str, np.ndarray]:
        return {n: o.float().numpy() for n, o in zip(self.output_names, outs, strict=True)}

    def group_of(self, name: str) -> str:
        return ALL

    def observe(self, batch: np.ndarray) -> Observation:
        """Hooked tensors and the finals of the hooked forward (one group: hooks fuse nothing,
        and the check confirms it)."""
        got: dict[str, np.ndarray] = {}
        mods = dict(self.module.named_modules())
        handles = []
        for tensor, path in self.plan.items():
            if not path:
                got[tensor] = batch.astype(np.float32)
                continue

            def hook(_m, _a, out, tensor=tensor):
                got[tensor] = out.detach().float().numpy().copy()

            handles.append(mods[path].register_forward_hook(hook))
        try:
            finals = self._finals(self._forward(batch))
        finally:
            for h in handles:
                h.remove()
        return got, {ALL: finals}

    def plain(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._finals(self._forward(batch))


def _sample(model: onnx.ModelProto) -> np.ndarray:
    """A zero batch of one in the ONNX input's shape (dynamic dims need an explicit sample)."""
    name = input_name(model)
    value = next(i for i in model.graph.input if i.name == name)
    dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
    if any(d <= 0 for d in dims[1:]):
        raise ValueError(f"input '{name}' has dynamic dims {dims}: pass sample=")
    return np.zeros([1, *dims[1:]], np.float32)
