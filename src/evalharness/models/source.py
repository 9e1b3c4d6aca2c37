"""Model sources: how a config names a model, and how its torch module is built and loaded.

`source` in a model config:
- torch:       `builder` (a `_target_` callable) + `weights` (a state dict or checkpoint);
- torchvision: `arch` (a torchvision.models name) + `weights` (a local state dict file);
- onnx:        `weights` is an .onnx file (runs on onnxruntime and openvino);
- openvino:    `weights` is an IR .xml file with its .bin beside it (runs on openvino).

A `ModelSpec` is hashable and carries the content hash of its weights, so every artefact
derived from it (ONNX exports, compiled variants) can be cached by what it is, not by name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from evalharness import PROJECT_ROOT

STRIP_PREFIXES = ("module.", "model.", "_orig_mod.")


def resolve_path(p: str | Path) -> Path:
    """A config path: absolute, or relative to the cwd, or else to the project root."""
    p = Path(str(p)).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return PROJECT_ROOT / p


@lru_cache(maxsize=64)
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


SOURCES = ("torch", "torchvision", "onnx", "openvino")
# Which backends can run a model from each source.
SOURCE_BACKENDS = {
    "torch": ("torch", "onnxruntime", "openvino"),
    "torchvision": ("torch", "onnxruntime", "openvino"),
    "onnx": ("onnxruntime", "openvino"),
    "openvino": ("openvino",),
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: str  # the builder config as sorted text: hashable and printable ("" if none)
    weights: Path  # state dict, or the model file itself for onnx / openvino sources
    weights_sha256: str
    num_classes: int
    input_size: int
    source: str = "torch"
    builder_cfg: Any = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> ModelSpec:
        source = cfg.get("source", "torch")
        if source not in SOURCES:
            raise ValueError(f"model '{cfg.name}': unknown source '{source}'; valid: {SOURCES}")
        weights = resolve_path(cfg.weights)
        if not weights.exists():
            raise FileNotFoundError(f"model '{cfg.name}': weights file not found: {weights}")
        builder: dict | None = None
        if source == "torch":
            builder = OmegaConf.to_container(cfg.builder, resolve=True)
        elif source == "torchvision":
            builder = {
                "_target_": "torchvision.models.get_model",
                "name": str(cfg.arch),
                "weights": None,
                "num_classes": int(cfg.num_classes),
            }
        return cls(
            name=cfg.name,
            builder=repr(sorted(builder.items())) if builder else "",
            weights=weights,
            weights_sha256=file_sha256(weights),
            num_classes=int(cfg.num_classes),
            input_size=int(cfg.card.input_size),
            source=source,
            builder_cfg=builder,
        )

    @property
    def has_torch_module(self) -> bool:
        return self.source in ("torch", "torchvision")


def clean_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or a checkpoint {'state_dict': ...}; strip wrapper prefixes."""
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise TypeError(f"expected a state dict, got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        for p in STRIP_PREFIXES:
            if k.startswith(p):
                k = k[len(p) :]
                break
        out[k] = v
    return out


def build_torch_model(spec: ModelSpec) -> torch.nn.Module:
    """Instantiate the builder and load the weights safely (weights_only=True)."""
    if not spec.has_torch_module:
        raise ValueError(f"model '{spec.name}' ({spec.source} file) has no torch module")
    module = instantiate(spec.builder_cfg)
    state = clean_state_dict(torch.load(spec.weights, map_location="cpu", weights_only=True))
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"model '{spec.name}': weights {spec.weights.name} do not fit the builder: "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return module.eval()
