"""PyTorch eager on CPU. Graph placement wraps the module with a normalizing front."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from evalharness.backends.base import BACKENDS, ModelVariant
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


class TorchSession:
    def __init__(self, module: nn.Module, dtype: torch.dtype) -> None:
        self.module, self.dtype = module, dtype

    def infer(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch).to(self.dtype))
        return out.float().numpy()


@BACKENDS.register("torch")
class TorchBackend:
    name = "torch"

    def load(self, variant: ModelVariant, cache_dir: str) -> TorchSession:
        if variant.placement == "ov_ppp":
            raise ValueError("norm placement 'ov_ppp' exists only on backend 'openvino'")
        torch.set_num_threads(variant.threads)
        module = build_torch_model(variant.model)
        if variant.placement == "graph":
            module = nn.Sequential(RawPixelNormalize(variant.mean, variant.std), module)
        dtype = _DTYPES[variant.precision]
        return TorchSession(module.to(dtype).eval(), dtype)

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}
