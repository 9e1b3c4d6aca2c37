"""Detection heads: a model's raw outputs -> candidate boxes and class scores, model pixels.

A head is chosen by the model config (`postprocess.head`) and knows only its own output
layout. What follows (score threshold, per-class NMS, the per-image cap, the way back to
source pixels) is the same for every head and lives in postprocess.py.

- yolox:   one output (N, A, 5 + C) per anchor point of every stride, row-major per level:
           x, y, log w, log h, objectness, C class scores (sigmoid already applied, as in
           the official export). Centre = (offset + grid) * stride, size = exp(.) * stride,
           class score = objectness * class score.
- nanodet: per stride a class map (N, H*W, C) (sigmoid applied) and a distance map
           (N, H*W, 4 * (reg_max + 1)): a softmax over reg_max + 1 bins per side, whose mean
           times the stride is the distance from the cell centre ((x + 0.5) * stride) to the
           left, top, right and bottom edges (NanoDet's GFL head, ncnn's nanodet example).
           The cells are row-major on the padded input: H = input height / stride and
           W = input width / stride. (ncnn's model_zoo/nanodet.py divides the cell count by
           the class count instead of the rows for portrait inputs, which scrambles them.)

Both take the input's height and width from the host tensor the model ran on, so a
letterbox, a limit policy or a padded multiple of 32 cannot desynchronise the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalharness.registry import Registry


@dataclass(frozen=True)
class Candidates:
    """Per batch: xyxy boxes in model-input pixels (N, A, 4) and class scores (N, A, C)."""

    boxes: np.ndarray
    scores: np.ndarray


class Head:
    name: str

    def roles(self, strides: tuple[int, ...]) -> tuple[str, ...]:
        raise NotImplementedError

    def decode(
        self, outputs: dict[str, np.ndarray], input_hw: tuple[int, int], settings
    ) -> Candidates:
        raise NotImplementedError

    def n_classes(self, outputs: dict[str, np.ndarray], settings) -> int:
        raise NotImplementedError


HEADS: Registry[Head] = Registry("detection head")


def grid_cells(input_hw: tuple[int, int], strides: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """(x, y, stride) of every cell of every level, row-major per level, levels in order."""
    xs, ys, ss = [], [], []
    for s in strides:
        h, w = input_hw[0] // s, input_hw[1] // s
        yv, xv = np.mgrid[0:h, 0:w]
        xs.append(xv.ravel())
        ys.append(yv.ravel())
        ss.append(np.full(h * w, s))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ss)


def _check_cells(n: int, input_hw, strides, what: str) -> None:
    expected = sum((input_hw[0] // s) * (input_hw[1] // s) for s in strides)
    if n != expected:
        raise ValueError(
            f"{what}: {n} cells, but a {input_hw[0]}x{input_hw[1]} input with strides "
            f"{list(strides)} has {expected}; check postprocess.strides and the input size"
        )


class YoloxHead(Head):
    name = "yolox"

    def roles(self, strides):
        return ("raw",)

    def n_classes(self, outputs, settings):
        return int(outputs["raw"].shape[-1]) - 5

    def decode(self, outputs, input_hw, settings):
        raw = np.asarray(outputs["raw"], dtype=np.float32)
        if raw.ndim != 3 or raw.shape[-1] < 6:
            raise ValueError(f"yolox head: output shape {raw.shape}, expected (N, A, 5 + C)")
        _check_cells(raw.shape[1], input_hw, settings.strides, "yolox head")
        gx, gy, stride = (a.astype(np.float32) for a in grid_cells(input_hw, settings.strides))
        cx = (raw[..., 0] + gx) * stride
        cy = (raw[..., 1] + gy) * stride
        with np.errstate(over="ignore"):
            w = np.exp(raw[..., 2]) * stride
            h = np.exp(raw[..., 3]) * stride
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)
        return Candidates(boxes, raw[..., 4:5] * raw[..., 5:])


class NanodetHead(Head):
    name = "nanodet"

    def roles(self, strides):
        return tuple(f"cls_{s}" for s in strides) + tuple(f"dis_{s}" for s in strides)

    def n_classes(self, outputs, settings):
        return int(outputs[f"cls_{settings.strides[0]}"].shape[-1])

    def decode(self, outputs, input_hw, settings):
        bins = settings.reg_max + 1
        boxes, scores = [], []
        for s in settings.strides:
            cls = np.asarray(outputs[f"cls_{s}"], dtype=np.float32)
            n, c = cls.shape[0], cls.shape[-1]
            cls = cls.reshape(n, -1, c)
            dis = np.asarray(outputs[f"dis_{s}"], dtype=np.float32).reshape(n, -1, 4, bins)
            _check_cells(cls.shape[1], input_hw, (s,), f"nanodet head, stride {s}")
            if dis.shape[1] != cls.shape[1]:
                raise ValueError(f"nanodet head, stride {s}: {dis.shape[1]} distance cells, "
                                 f"{cls.shape[1]} class cells")  # fmt: skip
            e = np.exp(dis - dis.max(axis=-1, keepdims=True))
            dist = (e / e.sum(axis=-1, keepdims=True)) @ np.arange(bins, dtype=np.float32) * s
            gx, gy, _ = grid_cells(input_hw, (s,))
            cx = ((gx + 0.5) * s).astype(np.float32)
            cy = ((gy + 0.5) * s).astype(np.float32)
            boxes.append(
                np.stack(
                    [cx - dist[..., 0], cy - dist[..., 1], cx + dist[..., 2], cy + dist[..., 3]],
                    axis=-1,
                )
            )
            scores.append(cls)
        return Candidates(np.concatenate(boxes, axis=1), np.concatenate(scores, axis=1))


HEADS.register("yolox")(YoloxHead())
HEADS.register("nanodet")(NanodetHead())
