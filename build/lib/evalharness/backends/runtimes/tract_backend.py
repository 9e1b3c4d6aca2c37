"""tract (sonos/tract, a Rust inference engine) on the project's ONNX export or the user's ONNX.

tract wants concrete shapes: it analyses and optimizes the graph for one input fact
("4,3,224,224,f32"). The session keeps one optimized runnable per distinct batch shape, built
the first time that shape arrives (a sweep sees two or three: the batch size, the last
partial batch, the probe). Output names come from the ONNX graph (tract reports node names).

Some exported graphs carry `graph.value_info` shape hints that tract's analysis cannot unify
with its own (PP-OCRv6: "Impossible to unify Sym(DynamicDimension.0) with Val(1)"). When
tract fails to analyse a model that has such hints, the session retries once on a derived
copy without them (in the cache, never beside the user's file) and says so in its notes.

Threads: tract's Python bindings expose no thread count; its CPU executor runs
single-threaded by default, so `threads` does not apply and results are reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalharness.backends.base import (
    BACKENDS,
    BaseBackend,
    Capabilities,
    IOInfo,
    ModelVariant,
    as_float32_outputs,
    dist_version,
)
from evalharness.backends.export import has_value_info, onnx_signature, without_value_info
from evalharness.backends.variants import onnx_for_variant
from evalharness.optional import require

_DATUM = {"float32": "f32", "float16": "f16", "uint8": "u8", "int64": "i64"}


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


class TractSession:
    thread_safe = False  # one inference at a time (the engine serializes calls)
    build_seconds = 0.0

    def __init__(self, path: Path, variant: ModelVariant, cache_dir: str) -> None:
        self.tract = require("tract", "backend 'tract'", "tract")
        self.path = path
        self.cache_dir = cache_dir
        inputs, outputs = onnx_signature(path)
        self.input: IOInfo = inputs[0]
        if len(inputs) > 1:
            raise ValueError(
                f"{path.name}: tract backend feeds one input, the model has "
                f"{len(inputs)} ({', '.join(i.name for i in inputs)})"
            )
        self.output_names = [o.name for o in outputs]
        self.datum = _DATUM.get(self.input.dtype, "f32")
        self.precision_ran = "fp32"
        self.notes: tuple[str, ...] = ("tract: single-threaded CPU executor",)
        self.runnables: dict[tuple[int, ...], object] = {}

    def _build(self, shape: tuple[int, ...]):
        model = self.tract.onnx().load(str(self.path))
        model.set_input_fact(0, ",".join(str(d) for d in shape) + f",{self.datum}")
        return model.into_model().into_runnable()

    def runnable(self, shape: tuple[int, ...]):
        """The runnable optimized for this input shape; built once per shape."""
        if shape in self.runnables:
            return self.runnables[shape]
        try:
            run = self._build(shape)
        except self.tract.TractError as e:
            if "analyse" not in str(e) or not has_value_info(self.path):
                raise ValueError(f"tract cannot load {self.path.name}: {_first_line(e)}") from None
            self.path = without_value_info(self.path, self.cache_dir)
            self.notes += ("graph.value_info removed (tract could not unify its shape hints)",)
            try:
                run = self._build(shape)
            except self.tract.TractError as e2:
                raise ValueError(f"tract cannot load {self.path.name}: {_first_line(e2)}") from None
        self.runnables[shape] = run
        return run

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        batch = np.ascontiguousarray(batch)
        outs = self.runnable(tuple(batch.shape)).run([batch])
        return as_float32_outputs(self.output_names, [o.to_numpy() for o in outs])


@BACKENDS.register("tract")
class TractBackend(BaseBackend):
    name = "tract"
    capabilities = Capabilities(
        sources=("torch", "torchvision", "onnx"),
        placements=("host", "graph"),
        precisions=("fp32",),
        devices=("cpu",),
        requires=("tract",),
        extra="tract",
        reference_rank=3,
    )

    def load(self, variant: ModelVariant, cache_dir: str, calibration=None) -> TractSession:
        require("tract", "backend 'tract'", "tract")  # before any export work
        return TractSession(Path(onnx_for_variant(variant, cache_dir)), variant, cache_dir)

    def versions(self) -> dict[str, str]:
        return {"tract": dist_version("tract")}
