"""Geometry is data: every resize policy's recorded transform is the one its pixels went
through, and detections come back to the source pixels through it."""

from __future__ import annotations

import numpy as np
import pytest

from evalharness.data.dataset import Sample
from evalharness.data.loaders.detection import BoxTarget
from evalharness.preprocess.geometry import Frame, Geometry
from evalharness.preprocess.resize import ResizeSpec, resize
from evalharness.tasks.detection.postprocess import PostSettings
from evalharness.tasks.detection.task import Detection

LIBRARIES = ["pil", "opencv", "torchvision"]
# (crop policy, extra ResizeSpec settings): every policy, letterbox at both anchors.
POLICIES = [
    ("center", {}),
    ("squash", {}),
    ("letterbox", {}),
    ("letterbox", {"anchor": "top_left"}),
    ("letterbox_multiple", {"multiple": 32}),  # NanoDet: pad only up to a multiple of 32
    ("squash_crop", {}),
    ("limit_max", {"limit_side_len": 96, "multiple": 32}),
    ("limit_min", {"limit_side_len": 160, "multiple": 32}),
    ("none", {}),
    ("squash", {"swap_hw": True, "size": (96, 128)}),  # the (w, h) bug: recorded too
]
SOURCES = {"landscape": (150, 220), "portrait": (220, 150)}
SOURCE_BOX = {"landscape": (83.0, 51.0, 141.0, 97.0), "portrait": (47.0, 86.0, 103.0, 142.0)}


def _spec(lib: str, crop: str, extra: dict) -> ResizeSpec:
    settings = {"size": (128, 128), **extra}
    return ResizeSpec(lib, "bilinear", antialias=True, crop=crop, **settings)


def _image(shape: str) -> np.ndarray:
    h, w = SOURCES[shape]
    arr = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = (int(v) for v in SOURCE_BOX[shape])
    arr[y1:y2, x1:x2] = 255
    return arr


def _edges(row: np.ndarray) -> tuple[float, float]:
    """Sub-pixel places (pixel edges at integers) where a 0/255 profile crosses half."""
    v = row.astype(np.float64) / 255.0
    inside = np.nonzero(v >= 0.5)[0]
    a, b = inside[0], inside[-1]
    # linear interpolation of the crossing between pixel centres k - 1 + 0.5 and k + 0.5
    left = a + 0.5 - (v[a] - 0.5) / (v[a] - v[a - 1]) if a > 0 else 0.0
    right = b + 0.5 + (v[b] - 0.5) / (v[b] - v[b + 1]) if b + 1 < len(v) else float(len(v))
    return float(left), float(right)


def _measured_box(frame: Frame) -> np.ndarray:
    """The white rectangle's box in the frame's pixels, measured through its middle."""
    px = frame.pixels[..., 0]
    ys, xs = np.nonzero(px >= 128)
    x1, x2 = _edges(px[int(np.median(ys))])
    y1, y2 = _edges(px[:, int(np.median(xs))])
    return np.array([[x1, y1, x2, y2]])


@pytest.mark.parametrize("shape", sorted(SOURCES))
@pytest.mark.parametrize("crop,extra", POLICIES, ids=lambda p: str(p))
@pytest.mark.parametrize("lib", LIBRARIES)
def test_boxes_round_trip_through_every_policy(lib, crop, extra, shape):
    """The box the pixels show in model space is where Geometry.to_model puts the source box
    (within half a model pixel), and boxes_to_source takes it back within half a pixel."""
    frame = resize(_image(shape), _spec(lib, crop, extra))
    geom = frame.geometry
    assert frame.pixels.shape[:2] == geom.out_hw
    src = np.array([SOURCE_BOX[shape]])
    corners = geom.to_model(src.reshape(-1, 2, 2)).reshape(-1, 4)
    np.testing.assert_allclose(geom.boxes_to_source(corners, clip=False), src, atol=1e-9)
    measured = _measured_box(frame)
    np.testing.assert_allclose(measured, corners, atol=0.5)
    back = geom.boxes_to_source(measured, clip=False)
    scale = np.repeat(np.asarray(geom.scale), 2)[[0, 2, 1, 3]]  # per x1, y1, x2, y2
    np.testing.assert_allclose((back - src) * scale, 0, atol=0.5)


def test_letterbox_top_left_truncates_like_yolox():
    """YOLOX: r = min(416 / h, 416 / w), resized to int(h r) x int(w r), padded bottom-right."""
    frame = resize(np.zeros((427, 640, 3), np.uint8), ResizeSpec(
        "opencv", "bilinear", size=416, antialias=False, crop="letterbox", anchor="top_left",
        pad_value=114))  # fmt: skip
    g = frame.geometry
    assert g.offset == (0.0, 0.0)
    assert g.scale == (416 / 640, int(427 * 0.65) / 427)
    assert (frame.pixels[int(427 * 0.65) :] == 114).all()


def _yolox_raw(box_model: tuple[float, float, float, float], stride: int, hw, cls: int, n_cls):
    """A YOLOX output with one confident anchor predicting `box_model` (model pixels)."""
    h, w = hw
    cells = [(y, x, s) for s in (8, 16, 32) for y in range(h // s) for x in range(w // s)]
    raw = np.full((1, len(cells), 5 + n_cls), 0.0, np.float32)
    raw[..., 2:4] = -5  # tiny boxes elsewhere, all with score 0
    x1, y1, x2, y2 = box_model
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    k = cells.index((int(cy // stride), int(cx // stride), stride))
    raw[0, k, :4] = [cx / stride - int(cx // stride), cy / stride - int(cy // stride),
                     np.log((x2 - x1) / stride), np.log((y2 - y1) / stride)]  # fmt: skip
    raw[0, k, 4] = 0.9
    raw[0, k, 5 + cls] = 0.8
    return raw


def test_a_box_predicted_on_a_letterboxed_image_lands_on_the_source_object():
    """An object at a known source box; the model 'sees' it where the letterbox put it; the
    task's prediction must land back on the source box, through the frame's geometry only."""
    src_box = np.array([400.0, 120.0, 560.0, 300.0])  # in a 480 x 640 (h x w) image
    frame = resize(np.zeros((480, 640, 3), np.uint8), ResizeSpec(
        "opencv", "bilinear", size=416, antialias=False, crop="letterbox", anchor="center",
        pad_value=114))  # fmt: skip
    g = frame.geometry
    assert g.offset[1] > 0  # centred: padding above the image
    model_box = g.to_model(src_box.reshape(2, 2)).ravel()
    raw = _yolox_raw(tuple(model_box), 16, g.out_hw, cls=2, n_cls=3)
    task = Detection(PostSettings(head="yolox"))
    target = BoxTarget(1, ((400.0, 120.0, 160.0, 180.0),), (2,), (False,), (28800.0,), (1,))
    sample = Sample(0, "a.jpg", None, target=target)  # type: ignore[arg-type]
    host = Frame(np.zeros((3, 416, 416), np.float32), g)
    (row,) = task.predict({"raw": raw}, [host], [sample])
    np.testing.assert_allclose(row["boxes"][0], src_box, atol=1e-3)
    assert row["labels"] == [2] and row["tp"][0] == (1 << 10) - 1  # a hit at every IoU
    # The same output read through another image's geometry lands elsewhere: the boxes
    # really are taken from the frame.
    other = Frame(host.pixels, Geometry((416, 416), (416, 416)))
    (row2,) = task.predict({"raw": raw}, [other], [sample])
    assert not np.allclose(row2["boxes"][0], src_box, atol=1.0)


def test_letterbox_multiple_pads_only_to_the_next_multiple_like_ncnn_nanodet():
    """640 x 427 -> long side 320, short side int(427 * 320 / 640) = 213 -> canvas 224 x 320,
    the image 5 px down (the odd padding pixel at the bottom), as ncnn's nanodet.py does."""
    img = np.zeros((427, 640, 3), np.uint8)
    spec = ResizeSpec("opencv", "bilinear", size=320, crop="letterbox_multiple", multiple=32)
    frame = resize(img, spec)
    assert frame.pixels.shape == (224, 320, 3)
    assert frame.geometry.offset == (0.0, 5.0) and frame.geometry.out_hw == (224, 320)
    portrait = resize(img.transpose(1, 0, 2), spec)
    assert portrait.pixels.shape == (320, 224, 3)
