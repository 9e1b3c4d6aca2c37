"""PyTorch eager. Graph placement wraps the module with a normalizing front."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from evalharness.backends.base import BACKENDS, Capabilities, IOInfo, ModelVariant
from evalharness.backends.export import torch_output_names
from evalharness.models.source import build_torch_model

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class RawPixelNormalize(nn.Module):
    """(x - 255 mean) / (255 std) on raw 0..255 NCHW pixels: normalization inside the model."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _as_list(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return list(out.values())
    return list(out)


class TorchSession:
    thread_safe = True  # an eval-mode module under inference_mode is safe to share

    def __init__(self, module: nn.Module, variant: ModelVariant) -> None:
        self.module = module
        self.dtype = _DTYPES[variant.precision]
        self.device = torch.device(variant.device)
        self.names = torch_output_names(variant.model)
        hw = variant.model.input_hw
        self.input = IOInfo("input", (None, 3, *(hw or (None, None))))
        self.precision_ran = variant.precision
        self.notes: tuple[str, ...] = ()

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
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
class TorchBackend:
    name = "torch"
    capabilities = Capabilities(
        sources=("torch", "torchvision"),
        placements=("host", "graph"),
        precisions=("fp32", "bf16", "fp16"),
        devices=("cpu", "cuda"),
    )

    @staticmethod
    def refuses(placement: str, precision: str, device: str) -> str | None:
        if precision == "fp16" and device == "cpu":
            return "precision 'fp16' on torch needs device=cuda (CPU fp16 kernels are emulated)"
        return None

    @staticmethod
    def device_missing(device: str) -> str | None:
        if device == "cuda" and not torch.cuda.is_available():
            return "device 'cuda': torch sees no CUDA GPU on this machine"
        return None

    def load(self, variant: ModelVariant, cache_dir: str) -> TorchSession:
        why = self.refuses(variant.placement, variant.precision, variant.device)
        if why:
            raise ValueError(why)
        why = self.device_missing(variant.device)
        if why:
            raise ValueError(why)
        torch.set_num_threads(variant.threads)
        module = build_torch_model(variant.model)
        if variant.placement == "graph":
            module = nn.Sequential(RawPixelNormalize(variant.mean, variant.std), module)
        dtype = _DTYPES[variant.precision]
        module = module.to(device=variant.device, dtype=dtype).eval()
        return TorchSession(module, variant)

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}
