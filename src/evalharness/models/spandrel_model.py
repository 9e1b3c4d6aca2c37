"""Load an image-to-image model file (.pth/.ckpt/.safetensors) the way chaiNNer users do,
with spandrel detecting the architecture, but without letting the file run code.

What spandrel 0.4.2 does itself (`ModelLoader.load_from_file`):
- .pth/.ckpt: `torch.load(path, pickle_module=RestrictedUnpickle)`. Passing a
  pickle_module makes torch default to weights_only=False, so torch's own safe unpickler
  is *off*; the protection is spandrel's `find_class` allow-list (OrderedDict,
  `torch._utils._rebuild_tensor_v2` and five storage types). That blocks arbitrary
  globals, but it is a second, smaller allow-list to trust;
- .pt: `torch.jit.load` first, i.e. a TorchScript archive, which carries code of its own,
  and the restricted pickle only as a fallback;
- .safetensors: no pickle at all.

Here the state dict is read by `torch.load(weights_only=True)` (PyTorch's maintained
weights-only unpickler, the default since torch 2.6) or safetensors, and only then given to
spandrel (`canonicalize_state_dict` + `MAIN_REGISTRY.load`), so spandrel never opens the
file. TorchScript is refused. A file that needs any other global fails with the name of the
global, before anything it names is called.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PICKLE_SUFFIXES = {".pth", ".ckpt", ".pt", ".bin"}


@dataclass(frozen=True)
class SpandrelInfo:
    """What the engine needs to run and check an image-to-image model, from spandrel's
    descriptor (its architecture table, not guessed from file names)."""

    architecture: str  # spandrel's display name ("RealESRGAN Compact", "DITN", "DnCNN")
    arch_id: str
    purpose: str  # "SR", "Restoration", "FaceSR"...
    scale: int
    input_channels: int
    output_channels: int
    size_multiple: int  # H and W must be multiples of this (pad otherwise)
    size_minimum: int
    square: bool
    supports_fp16: bool
    supports_bf16: bool
    tiling: str  # spandrel's ModelTiling: SUPPORTED, DISCOURAGED or INTERNAL
    parameters: int
    sha256: str


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """The tensors of a model file, read without executing code from it (see module doc)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if suffix not in _PICKLE_SUFFIXES:
        raise ValueError(f"{path.name}: unsupported model file type {suffix!r}")
    import torch

    if suffix == ".pt" and _is_torchscript(path):
        raise ValueError(f"{path.name} is a TorchScript archive (it carries code): refused")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path.name} is not a plain state dict; the weights-only loader refused it "
            f"without running it: {str(err).splitlines()[0]}"
        ) from err


def _is_torchscript(path: Path) -> bool:
    """A TorchScript zip has code/ records next to data.pkl; a state dict has none."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def load_spandrel(path: str | Path) -> tuple[Any, SpandrelInfo]:
    """(torch module in eval mode on CPU, its SpandrelInfo) for a model file spandrel knows.

    The module is the bare architecture: unlike spandrel's descriptor call it neither pads
    to the size multiple nor clamps to [0, 1], so the runtimes compare like for like and
    padding stays an explicit, measured choice (tiling.padded)."""
    from evalharness.optional import require

    spandrel = require("spandrel", "a spandrel model file", "spandrel")
    MAIN_REGISTRY, ImageModelDescriptor = spandrel.MAIN_REGISTRY, spandrel.ImageModelDescriptor
    state = spandrel.canonicalize_state_dict(read_state_dict(path))
    descriptor = MAIN_REGISTRY.load(state)
    if not isinstance(descriptor, ImageModelDescriptor):
        raise ValueError(
            f"{Path(path).name}: {descriptor.architecture.name} is not an image-to-image "
            f"model ({type(descriptor).__name__})"
        )
    module = descriptor.model.eval()
    return module, _info(descriptor, module, Path(path))


def spandrel_info(path: str | Path) -> SpandrelInfo:
    """What spandrel reads from a model file (scale, channels, size multiple...), read once
    per file version: planning asks before any backend loads the model."""
    path = Path(path)
    st = path.stat()
    return _cached_info(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _cached_info(path: str, mtime_ns: int, size: int) -> SpandrelInfo:
    try:
        return load_spandrel(path)[1]
    except ValueError:
        raise
    except Exception as err:  # spandrel's UnsupportedModelError and friends: one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{Path(path).name}: spandrel cannot load it: {first[:200]}") from None


def _info(descriptor: Any, module: Any, path: Path) -> SpandrelInfo:
    req = descriptor.size_requirements
    return SpandrelInfo(
        architecture=descriptor.architecture.name,
        arch_id=str(descriptor.architecture.id),
        purpose=str(descriptor.purpose),
        scale=int(descriptor.scale),
        input_channels=int(descriptor.input_channels),
        output_channels=int(descriptor.output_channels),
        size_multiple=int(req.multiple_of),
        size_minimum=int(req.minimum),
        square=bool(req.square),
        supports_fp16=bool(descriptor.supports_half),
        supports_bf16=bool(descriptor.supports_bfloat16),
        tiling=descriptor.tiling.name,
        parameters=sum(p.numel() for p in module.parameters()),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
