"""Model sources: how a config names a model, and how it is identified and built.

`source` in a model config:
- torch:       `builder` (a `_target_` callable) + `weights` (a state dict or checkpoint);
- torchvision: `arch` (a torchvision.models name) + `weights` (a local state dict file);
- onnx:        `weights` is an .onnx file (and its external-data files, if any);
- openvino:    `weights` is an IR .xml file with its .bin beside it;
- ncnn:        `weights` is a .param file with its .bin beside it (`input_name` and
               `outputs` name the blobs, else they are read from the .param);
- tflite:      `weights` is a .tflite (LiteRT) file;
- spandrel:    `weights` is an image-to-image model file (.pth/.ckpt/.safetensors) whose
               architecture, scale, channels and size multiple spandrel reads from the
               weights (models/spandrel_model.py), loaded without running code from it.
Which backends run which source is each backend's declaration (backends/base.py).

`files` names converted copies of the same model (`{onnx: m.onnx, ncnn: m.param}`): a
backend that runs one of those sources runs the user's copy instead of converting the
model itself, so one sweep asks "is my converted model the same model?" against the
original (the copies are part of the model's content hash).

A `ModelSpec` is hashable and carries the content hash of *every* file of the model (xml +
bin, onnx + external data, param + bin), so every artefact derived from it (exports,
normalized graphs, fp16 and int8 copies, compiled variants) is cached by what it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalharness.hashing import file_sha256
from evalharness.paths import resolve_path

STRIP_PREFIXES = ("module.", "model.", "_orig_mod.")
SOURCES = ("torch", "torchvision", "onnx", "openvino", "ncnn", "tflite", "spandrel")
TORCH_SOURCES = ("torch", "torchvision", "spandrel")  # sources with a torch module to export


def _onnx_external_files(path: Path) -> list[Path]:
    """The external-data files an ONNX model references (weights stored beside it)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises its own DecodeError on garbage
        raise ValueError(f"{path} is not a readable ONNX model ({type(e).__name__})") from None
    files = []
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            loc = {e.key: e.value for e in init.external_data}.get("location")
            if loc and (path.parent / loc) not in files:
                files.append(path.parent / loc)
    return files


def model_files(path: Path, source: str) -> list[Path]:
    """Every file a model of this source consists of; a missing one is named."""
    if source == "openvino":
        files = [path, path.with_suffix(".bin")]
    elif source == "ncnn":
        files = [path, path.with_suffix(".bin")]
    elif source == "onnx":
        if path.is_file() and path.stat().st_size == 0:
            raise ValueError(f"{path} is empty, not an ONNX model")
        files = [path, *_onnx_external_files(path)] if path.is_file() else [path]
    else:
        files = [path]
    for f in files:
        if not f.is_file():
            what = "" if f == path else f" (part of the {source} model {path.name})"
            raise FileNotFoundError(f"model file not found: {f}{what}")
    return files


def content_sha256(files: list[Path]) -> str:
    """One hash over the bytes of every file of a model (names do not matter, order does)."""
    h = hashlib.sha256()
    for f in files:
        h.update(file_sha256(f).encode())
    return h.hexdigest()


def _hw(value: Any) -> tuple[int, int] | None:
    """card.input_size: an int (square), [height, width], or null (any size: fully conv)."""
    if value is None:
        return None
    if isinstance(value, int | str):
        return int(value), int(value)
    h, w = (int(v) for v in value)
    return h, w


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: str  # the builder config as sorted text: hashable and printable ("" if none)
    weights: Path  # state dict, or the model file itself for file sources
    weights_sha256: str  # content hash of every file of the model
    num_classes: int | None
    input_hw: tuple[int, int] | None  # None: the model takes any size (fully convolutional)
    source: str = "torch"
    task: str = "classification"
    # role the task reads -> the model's output name ("logits" -> "output"); () = task default
    outputs: tuple[tuple[str, str], ...] = ()
    # the task's post-processing settings (head type, thresholds, NMS IoU...) as sorted
    # (key, value) pairs: part of the model's identity, read by Task.for_model
    postprocess: tuple[tuple[str, Any], ...] = ()
    # the input blob/tensor a file model is fed through ("" = read it from the file)
    input_name: str = ""
    builder_cfg: Any = field(default=None, compare=False, hash=False, repr=False)
    # where num_classes came from, for messages: "" (the config) or "read from m.onnx"
    num_classes_from: str = field(default="", compare=False, hash=False, repr=False)
    # Image models (spandrel reads these from the weights; a file model's config states
    # them): input channels (1 for a grey model), output/input size ratio, the multiple
    # that H and W must be (DITN: 8), and spandrel's architecture name.
    channels: int = 3
    out_channels: int = 3
    scale: int = 1
    size_multiple: int = 1
    architecture: str = ""
    # converted copies of this model by source ("onnx", "openvino", "ncnn"): see module doc
    converted: tuple[tuple[str, Path], ...] = ()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ModelSpec:
        """From the model's settings as plain data (config/ resolves the YAML into them)."""
        source = cfg.get("source", "torch")
        if source not in SOURCES:
            raise ValueError(f"model '{cfg['name']}': unknown source '{source}'; valid: {SOURCES}")
        task = str(cfg.get("task", "classification"))  # checked against the task registry
        weights = resolve_path(cfg["weights"])
        if not weights.exists():
            raise FileNotFoundError(f"model '{cfg['name']}': weights file not found: {weights}")
        if weights.is_dir():
            raise ValueError(
                f"model '{cfg['name']}': weights is a directory, not a file: {weights}"
            )
        builder: dict | None = None
        image = _image_properties(cfg, source, weights)
        converted = _converted_files(cfg)
        files = model_files(weights, source) + [
            f for kind, path in converted for f in model_files(path, kind)
        ]
        if source == "torch":
            builder = dict(cfg["builder"])
        elif source == "torchvision":
            builder = {
                "_target_": "torchvision.models.get_model",
                "name": str(cfg["arch"]),
                "weights": None,
                "num_classes": int(cfg["num_classes"]),
            }
        outputs = dict(cfg.get("outputs") or {})
        n_classes = cfg.get("num_classes")
        post = dict(cfg.get("postprocess") or {})
        post = tuple(sorted((str(k), _frozen(v)) for k, v in post.items()))
        return cls(
            name=cfg["name"],
            builder=repr(sorted(builder.items())) if builder else "",
            weights=weights,
            weights_sha256=content_sha256(files),
            num_classes=None if n_classes is None else int(n_classes),
            input_hw=_hw((cfg.get("card") or {}).get("input_size")),
            source=source,
            task=task,
            outputs=tuple(sorted((str(k), str(v)) for k, v in outputs.items())),
            postprocess=post,
            input_name=str(cfg.get("input_name") or ""),
            builder_cfg=builder,
            num_classes_from=str(cfg.get("num_classes_from") or ""),
            converted=converted,
            **image,
        )

    @property
    def has_torch_module(self) -> bool:
        return self.source in TORCH_SOURCES

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source this model can be run from: its own, then its converted copies."""
        return (self.source, *(kind for kind, _ in self.converted))

    def file_for(self, source: str) -> Path | None:
        """The user's file of this source (the weights, or a converted copy), else None:
        a backend then derives its model from the weights itself."""
        if source == self.source:
            return self.weights
        return dict(self.converted).get(source)

    @property
    def files(self) -> list[Path]:
        return model_files(self.weights, self.source)

    def output_for(self, role: str) -> str | None:
        """The model's output name that the task reads as `role`, if the config names one."""
        return dict(self.outputs).get(role)


def _image_properties(cfg: Mapping[str, Any], source: str, weights: Path) -> dict[str, Any]:
    """channels, out_channels, scale, size_multiple, architecture: read from the weights
    by spandrel, else the config's own values (a converted file does not carry them)."""
    if source == "spandrel":
        from evalharness.models.spandrel_model import spandrel_info

        info = spandrel_info(weights)
        found = dict(
            channels=info.input_channels,
            out_channels=info.output_channels,
            scale=info.scale,
            size_multiple=info.size_multiple,
            architecture=info.architecture,
        )
    else:
        found = dict(channels=3, out_channels=None, scale=1, size_multiple=1, architecture="")
    for key in ("channels", "out_channels", "scale", "size_multiple"):
        value = cfg.get(key)
        if value is not None and source != "spandrel":
            found[key] = value
        elif value is not None and int(value) != found[key]:
            raise ValueError(
                f"model '{cfg['name']}': {key} {value} in the config, but the weights "
                f"({found['architecture']}) have {found[key]}"
            )
    if found["out_channels"] is None:
        found["out_channels"] = found["channels"]
    for key in ("channels", "out_channels", "scale", "size_multiple"):
        if isinstance(found[key], bool) or int(found[key]) < 1:
            raise ValueError(f"model '{cfg['name']}': {key} must be >= 1, got {found[key]!r}")
        found[key] = int(found[key])
    return found


def _converted_files(cfg: Mapping[str, Any]) -> tuple[tuple[str, Path], ...]:
    """`files: {onnx: ..., openvino: ..., ncnn: ...}` as (source, resolved path), checked."""
    out = []
    for kind, path in sorted((cfg.get("files") or {}).items()):
        if path in (None, ""):
            continue
        if kind not in ("onnx", "openvino", "ncnn", "tflite"):
            raise ValueError(
                f"model '{cfg['name']}': files.{kind}: a converted copy is onnx, openvino, "
                "ncnn or tflite"
            )
        resolved = resolve_path(path)
        if not resolved.is_file():
            raise FileNotFoundError(f"model '{cfg['name']}': files.{kind} not found: {resolved}")
        out.append((str(kind), resolved))
    return tuple(out)


def _frozen(v: Any) -> Any:
    """Config values as hashable ones (lists -> tuples), for a frozen ModelSpec."""
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _frozen(x)) for k, x in v.items()))
    return v


def clean_state_dict(obj: Any) -> dict[str, Any]:
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


def load_weights(path: Path) -> Any:
    """torch.load with weights_only=True; a refused or unreadable file is one clear line."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(
            f"{path}: refused to load (weights_only=True allows tensors and plain containers "
            f"only; this file holds something else): {first[:160]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{path}: not a readable torch checkpoint ({type(e).__name__})") from None


def build_torch_model(spec: ModelSpec) -> Any:
    """Instantiate the builder and load the weights safely (weights_only=True); a spandrel
    file is read by spandrel's architecture table after a weights-only load."""
    if not spec.has_torch_module:
        raise ValueError(f"model '{spec.name}' ({spec.source} file) has no torch module")
    if spec.source == "spandrel":
        from evalharness.models.spandrel_model import load_spandrel

        try:
            return load_spandrel(spec.weights)[0]
        except Exception as e:  # spandrel raises its own types for an unknown architecture
            raise ValueError(f"model '{spec.name}': {e}") from None
    from hydra.utils import instantiate

    module = instantiate(spec.builder_cfg)
    state = clean_state_dict(load_weights(spec.weights))
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"model '{spec.name}': weights {spec.weights.name} do not fit the builder: "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return module.eval()
