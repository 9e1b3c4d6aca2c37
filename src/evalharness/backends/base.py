"""What a backend is: `load(variant) -> Session`, and `Session.infer(batch) -> {name: array}`.

A model variant is everything that changes the model rather than the host pipeline: the
backend, the device, where normalization lives (host / graph / ov_ppp), its mean and std, the
numeric precision, and backend options. Each variant is built once per sweep and fed every
config routed to it.

Every backend declares its `Capabilities` on its class, where it is registered: planning
reads them to refuse an impossible combination before any work starts, and to name the
extra to install when an optional runtime is missing. Backend modules import their runtime
inside `load()`, so a missing runtime breaks only the configs that use it.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from evalharness.models.source import ModelSpec
from evalharness.registry import Registry

if TYPE_CHECKING:  # onnx and pandas load when a probe is built, not when a backend registers
    from evalharness.layerwise.deploy import ProbeSource


@dataclass(frozen=True)
class Capabilities:
    """What a backend can run, declared where it is registered; planning reads only this.

    sources:    model sources it accepts (torch, torchvision, onnx, openvino, ncnn, tflite)
    placements: where normalization may live (host, graph, ov_ppp)
    precisions: precision values it runs (what *really* ran is the session's precision_ran)
    layouts:    host tensor layouts it takes: NCHW, or "model" (the layout the model file has)
    devices:    device values (cpu, cuda, tensorrt, ...)
    requires:   import names of the runtime; absent ones make the backend unavailable
    extra:      the pip extra that installs them
    reference_rank: order in which planning tries backends for a card's reference
    probes:     `layer_probe` exposes intermediate tensors (evalharness layers)
    """

    sources: tuple[str, ...]
    placements: tuple[str, ...] = ("host", "graph")
    precisions: tuple[str, ...] = ("fp32",)
    layouts: tuple[str, ...] = ("NCHW",)
    devices: tuple[str, ...] = ("cpu",)
    requires: tuple[str, ...] = ()
    extra: str = ""
    # where it comes in the search for the reference backend when a model card names none
    # (the first that runs the model's source): torch, then onnxruntime, openvino, ...
    reference_rank: int = 100
    probes: bool = False

    def missing(self, backend: str) -> str | None:
        """None when every runtime module is importable, else one line saying what to install."""
        absent = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if not absent:
            return None
        return (
            f"backend '{backend}' needs {', '.join(absent)}: "
            f"pip install 'evalharness[{self.extra or backend}]'"
        )


@dataclass(frozen=True)
class IOInfo:
    """A model input or output as the runtime sees it: name, shape (None = dynamic), dtype."""

    name: str
    shape: tuple[int | None, ...] = ()
    dtype: str = "float32"

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model insists on, or None when the batch dimension is free."""
        return self.shape[0] if self.shape and isinstance(self.shape[0], int) else None


@dataclass(frozen=True)
class ModelVariant:
    model: ModelSpec
    backend: str
    placement: str  # host | graph | ov_ppp
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    precision: str = "fp32"
    threads: int = 1
    device: str = "cpu"
    # Backend- or precision-specific settings (calibration, runtime flags) as sorted
    # (key, value) pairs: part of the variant's identity and of every derived model's key.
    options: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def in_graph_norm(self) -> tuple | None:
        """The mean/std the model itself applies, or None when the host normalizes."""
        return (self.mean, self.std) if self.placement != "host" else None

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)


class Session(Protocol):
    """A loaded variant. `infer` takes a host batch and returns every output by name.

    input:          the model input the batch feeds (its fixed batch size, if any)
    precision_ran:  the precision the runtime really used (a fallback says so)
    notes:          what the session did that a user should know (reshaped a fixed batch...)
    thread_safe:    `infer` may run on several threads at once (else the engine serializes)
    build_seconds:  seconds spent deriving the model this time (quantizing; 0 from the cache)
    """

    input: IOInfo
    precision_ran: str
    notes: tuple[str, ...]
    thread_safe: bool
    build_seconds: float

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...


class Backend(Protocol):
    """Everything planning and the loop ask of a runtime (all of it, so nobody `getattr`s).

    refuses:        a combination its flat Capabilities cannot say (int8 with ov_ppp, torch
                    fp16 on a CPU), as one line, or None;
    device_missing: why a declared device is absent on this machine, or None;
    load:           the variant built (exported, converted, quantized on `calibration`, the
                    config's own host tensors of the calibration images) and compiled;
    versions:       library versions for the results rows (`v_<key>` columns); cheap, never
                    raises: an absent library reads "absent";
    layer_probe:    (where `capabilities.probes`) the variant as `layers` compares it: the
                    file it runs and a way to build a probe of its intermediate tensors
                    (layerwise/deploy.py::ProbeSource), with the settings `load` uses.
    """

    name: str
    capabilities: Capabilities

    def refuses(self, placement: str, precision: str, device: str, source: str) -> str | None: ...

    def device_missing(self, device: str) -> str | None: ...

    def load(
        self, variant: ModelVariant, cache_dir: str, calibration: list[np.ndarray] | None = None
    ) -> Session: ...

    def versions(self) -> dict[str, str]: ...

    def layer_probe(
        self, variant: ModelVariant, cache_dir: str, calibration: list[np.ndarray] | None = None
    ) -> ProbeSource: ...


class BaseBackend:
    """Defaults of the Backend protocol for runtimes that need no special rule."""

    name = ""
    capabilities: Capabilities

    def refuses(self, placement: str, precision: str, device: str, source: str) -> str | None:
        return None

    def device_missing(self, device: str) -> str | None:
        return None

    def versions(self) -> dict[str, str]:
        return {}

    def layer_probe(
        self, variant: ModelVariant, cache_dir: str, calibration: list[np.ndarray] | None = None
    ) -> ProbeSource:
        raise ValueError(f"backend '{self.name}' cannot expose intermediate tensors (layers)")


def dist_version(distribution: str) -> str:
    """An installed distribution's version from its metadata (nothing imported), or "absent"."""
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def module_version(module: str, attribute: str = "__version__") -> str:
    """A library's version as it reports it, or "absent" (never imported when absent)."""
    if importlib.util.find_spec(module) is None:
        return "absent"
    value = getattr(importlib.import_module(module), attribute)
    return str(value() if callable(value) else value)


BACKENDS: Registry[type] = Registry(
    "backend", "evalharness.backends.runtimes", entry_points="evalharness.backends"
)


def as_float32_outputs(names: list[str], arrays: list[Any]) -> dict[str, np.ndarray]:
    """Runtime outputs -> {name: float32 ndarray} (integer outputs keep their dtype)."""
    out = {}
    for name, arr in zip(names, arrays, strict=True):
        a = np.asarray(arr)
        out[name] = a.astype(np.float32, copy=False) if a.dtype.kind == "f" else a
    return out
