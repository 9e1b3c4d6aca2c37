"""Library versions that decide the pixels and the numbers, for every results row."""

from __future__ import annotations

import platform
import re
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

import cv2
import numpy as np
import onnx
import onnxruntime
import openvino
import PIL
import torch
import torchvision
from PIL import features

import evalharness


def _opencv_jpeg() -> str:
    """OpenCV links its own JPEG library, which is not Pillow's: say which one."""
    m = re.search(r"^\s*JPEG:\s*(.+)$", cv2.getBuildInformation(), re.MULTILINE)
    return m.group(1).strip() if m else "unknown"


# Optional decoders and resizers (one extra each): their distribution's version, read
# without importing them; "absent" where the extra is not installed.
OPTIONAL_LIBRARIES = {
    "kornia_rs": "kornia-rs",
    "simplejpeg": "simplejpeg",
    "cykooz_resizer": "cykooz-resizer",
    "ncnn": "ncnn",
}


def _optional(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "absent"


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
        "openvino": openvino.get_version(),
        **{key: _optional(dist) for key, dist in OPTIONAL_LIBRARIES.items()},
        "cpu": platform.processor() or platform.machine(),
    }
