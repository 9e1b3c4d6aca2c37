"""Train the demo detector on a generated training split (never the demo_det eval images).

`python -m evalharness.demo.train_det` writes src/evalharness/demo/models/tiny_det.pt (a state
dict, shipped in the package). Inputs go
through the model card's reference pipeline (Pillow decode, bilinear letterbox to 128,
RGB, ImageNet mean/std) with the same stage code the harness evaluates with, and the
boxes go into model pixels through the Geometry that pipeline recorded.

Assignment is YOLOX's idea without SimOTA: a cell is positive for an object when its
centre lies in the object's central region (or it holds the object's centre); a cell
claimed by two objects goes to the smaller. Loss: objectness BCE on every cell, class BCE
and box L1 + GIoU on positive cells.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.ops import generalized_box_iou_loss

from evalharness.demo.demo_det import CLASSES, TRAIN_SPLIT, encode_jpeg, render_scene, scene_rng
from evalharness.models.tiny_det import TinyDet
from evalharness.preprocess.colour import ColourSpec, HostNormSpec
from evalharness.preprocess.decode import DecodeSpec
from evalharness.preprocess.pipeline import build_pipeline, run_pipeline
from evalharness.preprocess.resize import ResizeSpec

SIZE, STRIDE = 128, 8
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
REFERENCE = build_pipeline(
    DecodeSpec("pil"),
    ResizeSpec("pil", "bilinear", size=SIZE, crop="letterbox"),
    ColourSpec("rgb"),
    HostNormSpec("host", MEAN, STD),
)
CENTRAL = 0.5  # share of the box (each side) whose cells are positive


def make_split(n: int, workdir: Path):
    """n scenes through the reference pipeline: inputs and boxes in model pixels (xyxy)."""
    xs, boxes, labels = [], [], []
    for i in range(n):
        rng = scene_rng(TRAIN_SPLIT, i)
        scene = render_scene(rng)
        path = workdir / f"{i}.jpg"
        path.write_bytes(encode_jpeg(scene.pixels, int(rng.integers(75, 96))))
        frame = run_pipeline(REFERENCE, path)
        b = np.asarray(scene.boxes, np.float64).reshape(-1, 4)
        corners = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1).reshape(-1, 2, 2)
        xs.append(frame.pixels)
        boxes.append(frame.geometry.to_model(corners).reshape(-1, 4).astype(np.float32))
        labels.append(np.asarray(scene.labels, np.int64))
    return np.stack(xs), boxes, labels


def assign(boxes: np.ndarray, labels: np.ndarray, n_classes: int):
    """Per cell: positive flag, box target (xyxy model px), raw target, class one-hot."""
    g = SIZE // STRIDE
    gy, gx = np.mgrid[0:g, 0:g]
    cx_cell, cy_cell = (gx.ravel() + 0.5) * STRIDE, (gy.ravel() + 0.5) * STRIDE
    owner = np.full(g * g, -1)
    best_area = np.full(g * g, np.inf)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        inside = (np.abs(cx_cell - cx) <= CENTRAL * w / 2) & (
            np.abs(cy_cell - cy) <= CENTRAL * h / 2
        )
        home = int(min(cy // STRIDE, g - 1)) * g + int(min(cx // STRIDE, g - 1))
        inside[home] = True
        take = inside & (w * h < best_area)
        owner[take], best_area[take] = k, w * h
    pos = owner >= 0
    box_t = np.zeros((g * g, 4), np.float32)
    raw_t = np.zeros((g * g, 4), np.float32)
    cls_t = np.zeros((g * g, n_classes), np.float32)
    if pos.any():
        b = boxes[owner[pos]]
        box_t[pos] = b
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        raw_t[pos, 0] = (b[:, 0] + b[:, 2]) / 2 / STRIDE - gx.ravel()[pos]
        raw_t[pos, 1] = (b[:, 1] + b[:, 3]) / 2 / STRIDE - gy.ravel()[pos]
        raw_t[pos, 2] = np.log(np.maximum(w, 1) / STRIDE)
        raw_t[pos, 3] = np.log(np.maximum(h, 1) / STRIDE)
        cls_t[pos, labels[owner[pos]]] = 1
    return pos, box_t, raw_t, cls_t


def decode_raw(raw: torch.Tensor) -> torch.Tensor:
    """(N, A, 4) raw offsets -> xyxy model pixels (the yolox head's decode, in torch)."""
    g = SIZE // STRIDE
    gy, gx = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    cx = (raw[..., 0] + gx.reshape(-1)) * STRIDE
    cy = (raw[..., 1] + gy.reshape(-1)) * STRIDE
    w, h = (
        torch.exp(raw[..., 2].clamp(max=8)) * STRIDE,
        torch.exp(raw[..., 3].clamp(max=8)) * STRIDE,
    )
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def flip_targets(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    out[:, 0], out[:, 2] = SIZE - boxes[:, 2], SIZE - boxes[:, 0]
    return out


def loss_fn(model: TinyDet, x, targets) -> torch.Tensor:
    pos, box_t, raw_t, cls_t = targets
    raw = model.raw(x)
    bce = nn.functional.binary_cross_entropy_with_logits
    loss = bce(raw[..., 4], pos.float(), reduction="sum") / max(1, int(pos.sum()))
    if pos.any():
        p = raw[pos]
        loss = loss + bce(p[:, 5:], cls_t[pos], reduction="mean") * model.num_classes
        loss = loss + nn.functional.l1_loss(p[:, :4], raw_t[pos])
        giou = generalized_box_iou_loss(decode_raw(raw)[pos], box_t[pos], reduction="mean")
        loss = loss + 2 * giou
    return loss


def batch_targets(boxes, labels, idx, flip, n_classes):
    parts = [assign(flip_targets(boxes[i]) if f else boxes[i], labels[i], n_classes)
             for i, f in zip(idx.tolist(), flip.tolist(), strict=True)]  # fmt: skip
    return tuple(torch.from_numpy(np.stack(p)) for p in zip(*parts, strict=True))


def train(n: int, epochs: int, seed: int = 0, batch: int = 64) -> TinyDet:
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        x, boxes, labels = make_split(n, Path(tmp))
        print(f"generated {n} training scenes in {time.time() - t0:.0f}s", flush=True)
    x = torch.from_numpy(x)
    model = TinyDet(len(CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=5e-4)
    steps = epochs * ((n + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for b in range(0, n, batch):
            idx = perm[b : b + batch]
            flip = torch.rand(len(idx), generator=gen) < 0.5  # the shapes are mirror-invariant
            xb = torch.where(flip[:, None, None, None], x[idx].flip(3), x[idx])
            loss = loss_fn(model, xb, batch_targets(boxes, labels, idx, flip, len(CLASSES)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / n:.3f} ({time.time() - t0:.0f}s)",
              flush=True)  # fmt: skip
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("src/evalharness/demo/models/tiny_det.pt"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = train(args.n, args.epochs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
