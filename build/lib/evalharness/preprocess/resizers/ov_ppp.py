"""OpenVINO PrePostProcessor resize: a `resize` value whose resampling happens inside the
compiled model (DESIGN: "an OpenVINO PrePostProcessor resize is a resize value").

Design, and why:
- The host does not resample. It cuts (or pads) the decoded image to the window the crop
  policy would show the model (resize.frame_for_model) and sends it at its own size; the
  variant's PrePostProcessor gets a dynamic spatial input and `resize(RESIZE_*)` to the
  graph's input size. Host tensors of different sizes fall into different shape groups of
  the engine (it already batches by tensor shape), so no padding to a common size is needed.
- The Geometry is known exactly without asking the model: the window the host cut, followed
  by a resize of that window to the model input size (a PPP resize scales each axis to the
  fixed input size). Detection boxes map back through it like any other resize.
- The variant learns it must add the PPP resize from the registration (`in_model=
  "ppp_resize"`): planning copies the interpolation into the variant option `ppp_resize`, so
  a PPP-resize variant is a model of its own (its own compile), and `backends=("openvino",)`
  makes planning refuse it on any other backend with one line.

Measured (OpenVINO 2026.4, real photos to 224x224): RESIZE_LINEAR is OpenCV-like bilinear
without antialiasing (within 0.8 of cv2.INTER_LINEAR, before rounding: the compiled model
keeps f32); RESIZE_BILINEAR_PILLOW is Pillow's antialiased bilinear (within 1 level).

The registered function runs the same PrePostProcessor resize on the host (a one-op model,
rounded to uint8): for parity checks and tests, never called by the pipeline.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from evalharness.preprocess import libraries
from evalharness.preprocess.ppp import PPP_RESIZE, add_ppp, cpu_streams
from evalharness.preprocess.resize import ResizeSpec, register_resizer


def _versions() -> dict[str, str]:
    return libraries.distribution("openvino", "openvino")


@lru_cache(maxsize=8)
def _compiled(interpolation: str, h: int, w: int):
    """A one-op model (x * 1) of input h x w behind a uint8 NHWC PPP resize."""
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter([1, 3, h, w], ov.Type.f32, name="x")
    model = ov.Model([ops.multiply(x, ops.constant(np.float32(1.0)))], [x], "ppp_resize")
    model = add_ppp(model, "ov_ppp", (0.0, 0.0, 0.0), (1 / 255,) * 3, interpolation)
    streams = cpu_streams(1)  # walk threads resize side by side, one thread each
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": streams,
              "NUM_STREAMS": streams}  # fmt: skip
    return ov.Core().compile_model(model, "CPU", config)


_REQUESTS = threading.local()


def _request(interpolation: str, h: int, w: int):
    """This thread's infer request on the shared compiled resize (CompiledModel.__call__
    reuses one request, which two walk threads must not share)."""
    key = (interpolation, h, w)
    requests = _REQUESTS.__dict__.setdefault("by_key", {})
    if key not in requests:
        requests[key] = _compiled(interpolation, h, w).create_infer_request()
    return requests[key]


@register_resizer(
    "ov_ppp", PPP_RESIZE, _versions, requires=("openvino",), extra="openvino",
    in_model="ppp_resize", backends=("openvino",),
)  # fmt: skip
def resize_ov_ppp(arr: np.ndarray, h: int, w: int, spec: ResizeSpec) -> np.ndarray:
    request = _request(spec.interpolation, h, w)
    out = request.infer({0: np.ascontiguousarray(arr)[None]})[0][0]
    return np.clip(np.rint(out.transpose(1, 2, 0)), 0, 255).astype(np.uint8)
