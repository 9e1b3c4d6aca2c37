"""A deployment as a layerwise comparison needs it: what a backend hands over, how the
reference graph is chosen, and a probe whose extra outputs leave the deployment as it runs.

Each runtime builds its own probe where it is registered (`Backend.layer_probe`), because
only the backend knows what it really runs: the file (export, graph normalization, QDQ or
NNCF int8), the threads, OpenVINO's inference precision, ncnn's Options. It returns a
`ProbeSource`; nothing outside the backend names a runtime setting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalharness.layerwise.divergence import observer_check
from evalharness.layerwise.probes import ALL, ObserverCheck, Probe


@dataclass(frozen=True)
class ProbeSource:
    """One config's deployment, ready to expose its intermediate tensors.

    names:      the ONNX file whose tensor names the deployment's tensors carry (the QDQ
                file it runs, or the float export an IR or a torch module is mapped to);
                None when the runtime reads no ONNX at all (a user's IR)
    float_onnx: the variant's float ONNX (export, graph normalization): the reference
                graph when the two sides run different files
    build:      (reference layers, mode) -> a Probe; mode "all" exposes every tensor in one
                model, "each" compiles one model per tensor
    modes:      the modes `build` takes
    batch_size: the batch the model insists on (a fixed batch of 1), or None
    """

    runtime: str
    names: Path | None
    float_onnx: Path | None
    build: Callable[[Sequence[str], str], Probe]
    modes: tuple[str, ...] = (ALL,)
    batch_size: int | None = None


def reference_onnx(a: ProbeSource, b: ProbeSource) -> Path:
    """The ONNX file that names and orders the compared layers.

    The file both sides run when they run the same one (a QDQ model on two runtimes: its
    quantization points are the layers, qdq_loss_debug's view); otherwise the float export
    (A's, else B's): fp32 against int8 compares the tensors of the float network, each int8
    side exposing those it quantizes.
    """
    if a.names is not None and a.names == b.names:
        return a.names
    for side in (a, b):
        if side.float_onnx is not None:
            return side.float_onnx
    raise ValueError(
        f"neither {a.runtime} nor {b.runtime} runs a model with an ONNX graph: no tensor "
        "names to compare by"
    )


@dataclass(frozen=True)
class ObservedProbe:
    """A probe and how it was chosen: the observer check of exposing every tensor at once,
    the mode that was kept ("each" when exposing all at once moved the outputs), and the
    batch that keeps the exposed tensors of one batch within the memory budget."""

    probe: Probe
    first_check: ObserverCheck
    mode: str
    batch_size: int = 64


TENSOR_BUDGET = 256 * 2**20  # bytes of exposed tensors per batch and side


def fitting_batch(probe: Probe, image: np.ndarray, cap: int = 64) -> int:
    """Images per batch such that the tensors one batch exposes stay within TENSOR_BUDGET
    (EfficientNet-Lite0 exposes about 28 MB per 224 x 224 image: 9 a batch), from one image
    observed."""
    seen, finals = probe.observe(np.ascontiguousarray(image[:1], dtype=np.float32))
    per_image = sum(v.nbytes for v in seen.values())
    per_image += sum(v.nbytes for group in finals.values() for v in group.values())
    return max(1, min(cap, TENSOR_BUDGET // max(per_image, 1)))


def observer_safe_probe(
    source: ProbeSource,
    layers: Sequence[str],
    images: np.ndarray,
    *,
    label: str,
    tol: float = 1e-4,
    batch_size: int = 64,
) -> ObservedProbe:
    """The source's probe with every tensor exposed at once, unless that moves the final
    outputs by more than `tol` (or any top-1) on these images: then one model per tensor,
    where the runtime can (an int8 OpenVINO model loses fusions to extra outputs; one
    tensor at a time mostly leaves them be). The comparison's own observer check then
    says what remained."""
    probe = source.build(layers, ALL)
    batch_size = source.batch_size or fitting_batch(probe, images, batch_size)
    check = observer_check(probe, images, batch_size, label=label)
    moved = check.max_abs_diff > tol or check.top1_changed > 0
    if moved and "each" in source.modes:
        return ObservedProbe(source.build(layers, "each"), check, "each", batch_size)
    return ObservedProbe(probe, check, ALL, batch_size)
