"""Versions of the image libraries, as the results rows name them (`v_<key>` columns).

A decoder and a resizer of the same library report the same keys. Each function is cheap and
never raises: an optional library that is not installed reads "absent" (found from package
metadata, never imported).
"""

from __future__ import annotations

import importlib.metadata
import re


def pillow() -> dict[str, str]:
    import PIL
    from PIL import features

    turbo = " (libjpeg-turbo)" if features.check_feature("libjpeg_turbo") else ""
    return {"pillow": PIL.__version__, "pillow_jpeg": f"{features.version('jpg')}{turbo}"}


def opencv() -> dict[str, str]:
    """OpenCV links its own JPEG library, which is not Pillow's: say which one."""
    import cv2

    m = re.search(r"^\s*JPEG:\s*(.+)$", cv2.getBuildInformation(), re.MULTILINE)
    return {"opencv": cv2.__version__, "opencv_jpeg": m.group(1).strip() if m else "unknown"}


def torchvision() -> dict[str, str]:
    try:
        import torchvision as tv
    except ImportError:
        return {"torchvision": "absent"}
    return {"torchvision": tv.__version__}


def distribution(dist: str, key: str) -> dict[str, str]:
    """An optional library's version from its metadata: {key: version or "absent"}."""
    try:
        return {key: importlib.metadata.version(dist)}
    except importlib.metadata.PackageNotFoundError:
        return {key: "absent"}
