"""Library versions that decide the pixels and the numbers, for every results row."""

from __future__ import annotations

import importlib.metadata
import platform
import re
from functools import lru_cache

import cv2
import numpy as np
import onnx
import onnxruntime
import PIL
import torch
import torchvision
from PIL import features

import evalharness


def _opencv_jpeg() -> str:
    """OpenCV links its own JPEG library, which is not Pillow's: say which one."""
    m = re.search(r"^\s*JPEG:\s*(.+)$", cv2.getBuildInformation(), re.MULTILINE)
    return m.group(1).strip() if m else "unknown"


# Optional runtimes, decoders and resizers (one extra each), distribution name -> column:
# read from the installed package's metadata, so an absent one is never imported (and reads
# "absent").
OPTIONAL_RUNTIMES = {
    "tract": "tract",
    "ncnn": "ncnn",
    "pnnx": "pnnx",
    "kornia-rs": "kornia_rs",
    "simplejpeg": "simplejpeg",
    "cykooz-resizer": "cykooz_resizer",
    "ai-edge-litert": "ai_edge_litert",
    "litert-torch": "litert_torch",
}


def optional_versions() -> dict[str, str]:
    out = {}
    for dist, column in OPTIONAL_RUNTIMES.items():
        try:
            out[column] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[column] = "absent"
    return out


def _openvino() -> str:
    """OpenVINO's build string; "absent" where a machine lacks it (a GPU box running torch)."""
    try:
        import openvino
    except ImportError:
        return "absent"
    return openvino.get_version()


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    turbo = " (libjpeg-turbo)" if features.check_feature("libjpeg_turbo") else ""
    return {
        "evalharness": evalharness.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "pillow_jpeg": f"{features.version('jpg')}{turbo}",
        "opencv": cv2.__version__,
        "opencv_jpeg": _opencv_jpeg(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "openvino": _openvino(),
        **optional_versions(),
        "cpu": platform.processor() or platform.machine(),
    }
