"""torch module -> `.tflite` through litert-torch, into the derived-model cache.

litert-torch (`pip install 'evalharness[litert-convert]'`, a 6.6 GB environment: it pulls
jax, transformers and torchao) traces the module with torch.export and writes a LiteRT
flatbuffer whose input stays NCHW, as in torch, with a fixed batch of 1 (the session feeds
one image at a time). `norm=graph` wraps the module with the raw-pixel normalization first.
The key is the weights' content hash, the builder, the input size, the placement and the
versions of torch and litert-torch.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch
from torch import nn

from evalharness.backends.base import ModelVariant
from evalharness.backends.derived import derived_file
from evalharness.models.source import build_torch_model
from evalharness.optional import require


def tflite_from_torch(variant: ModelVariant, cache_dir: str | Path) -> Path:
    spec = variant.model
    if spec.input_hw is None:
        raise ValueError(f"model '{spec.name}': converting to LiteRT needs card.input_size")
    litert_torch = require("litert_torch", "converting a torch model to LiteRT", "litert-convert")
    payload = dict(
        kind="litert",
        weights=spec.weights_sha256,
        builder=spec.builder,
        size=list(spec.input_hw),
        norm=variant.in_graph_norm,
        torch=torch.__version__,
        litert_torch=importlib.metadata.version("litert-torch"),
    )

    def build(tmp: Path) -> None:
        from evalharness.backends.torch_modules import RawPixelNormalize

        module: nn.Module = build_torch_model(spec)
        if variant.placement == "graph":
            module = nn.Sequential(RawPixelNormalize(variant.mean, variant.std), module).eval()
        sample = (torch.zeros(1, 3, *spec.input_hw),)
        litert_torch.convert(module, sample).export(str(tmp))

    return derived_file(cache_dir, "tflite", payload, ".tflite", build, stem=spec.name)
