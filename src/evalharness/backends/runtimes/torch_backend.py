"""PyTorch eager. Graph placement wraps the module with a normalizing front."""

from __future__ import annotations

from typing import Any

import numpy as np

from evalharness.backends.base import (
    BACKENDS,
    BaseBackend,
    Capabilities,
    IOInfo,
    ModelVariant,
    module_version,
)
from evalharness.backends.export import torch_output_names
from evalharness.models.source import build_torch_model


def _dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _as_list(out) -> list[Any]:
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return list(out.values())
    return list(out)


class TorchSession:
    thread_safe = True  # an eval-mode module under inference_mode is safe to share
    build_seconds = 0.0

    def __init__(self, module, variant: ModelVariant) -> None:
        import torch

        self.module = module
        self.dtype = _dtype(variant.precision)
        self.device = torch.device(variant.device)
        self.names = torch_output_names(variant.model)
        hw = variant.model.input_hw
        self.input = IOInfo("input", (None, variant.model.channels, *(hw or (None, None))))
        self.precision_ran = variant.precision
        self.notes: tuple[str, ...] = ()

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, self.dtype)
            outs = _as_list(self.module(x))
        if len(outs) != len(self.names):
            raise ValueError(
                f"the torch module returned {len(outs)} outputs; the model config names "
                f"{len(self.names)} ({', '.join(self.names)})"
            )
        return {n: o.float().cpu().numpy() for n, o in zip(self.names, outs, strict=True)}


@BACKENDS.register("torch")
class TorchBackend(BaseBackend):
    name = "torch"
    capabilities = Capabilities(
        sources=("torch", "torchvision", "spandrel"),
        placements=("host", "graph"),
        precisions=("fp32", "bf16", "fp16"),
        devices=("cpu", "cuda"),
        reference_rank=0,
        probes=True,
    )

    def refuses(self, placement: str, precision: str, device: str, source: str) -> str | None:
        if precision == "fp16" and device == "cpu":
            return "precision 'fp16' on torch needs device=cuda (CPU fp16 kernels are emulated)"
        return None

    def device_missing(self, device: str) -> str | None:
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            return "device 'cuda': torch sees no CUDA GPU on this machine"
        return None

    def load(self, variant: ModelVariant, cache_dir: str, calibration=None) -> TorchSession:
        import torch

        why = self.refuses(variant.placement, variant.precision, variant.device, "torch")
        why = why or self.device_missing(variant.device)
        if why:
            raise ValueError(why)
        torch.set_num_threads(variant.threads)
        module = build_torch_model(variant.model)
        if variant.placement == "graph":
            from evalharness.backends.torch_modules import RawPixelNormalize

            module = torch.nn.Sequential(RawPixelNormalize(variant.mean, variant.std), module)
        dtype = _dtype(variant.precision)
        module = module.to(device=variant.device, dtype=dtype).eval()
        return TorchSession(module, variant)

    def versions(self) -> dict[str, str]:
        return {"torch": module_version("torch")}

    def layer_probe(self, variant: ModelVariant, cache_dir: str, calibration=None):
        """The eager module `load` builds, hooked on the modules the export's node names map
        to (layerwise/torch_probe.py): the tensors carry the export's names."""
        from evalharness.backends.export import export_onnx
        from evalharness.layerwise.deploy import ProbeSource
        from evalharness.layerwise.torch_probe import TorchProbe

        if variant.device != "cpu":
            raise ValueError(f"layers runs on the CPU; device '{variant.device}' is not probed")
        if variant.placement == "graph":  # the wrapper shifts every module path by one level
            raise ValueError(
                "layers maps torch modules to the export's names: norm 'graph' wraps the "
                "module in a normalizing front; probe norm=host instead"
            )
        session = self.load(variant, cache_dir)
        names = export_onnx(variant.model, cache_dir)

        def build(layers, mode: str) -> TorchProbe:
            return TorchProbe(session.module, names, layers, dtype=session.dtype)

        return ProbeSource(self.name, names, names, build)
