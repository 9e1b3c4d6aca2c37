"""The demo detection set: shapes with known boxes, written as COCO JSON + JPEG files.

`python -m evalharness.demo.demo_det` regenerates datasets/demo_det/ byte for byte (same
seed, same Pillow). Each image has 1-4 objects of four classes on a noisy gradient:
- red_disk / blue_disk differ only in hue, so a BGR pipeline confuses them (as BGR
  confuses real detectors' colour-dependent classes);
- square / triangle (any hue) keep their class under a colour swap;
- the canvases are mostly non-square (aspect 9:16 to 16:9), so letterbox and squash feed
  the model differently shaped objects: a detector trained on letterboxed inputs loses
  boxes when squashed, and every box has to come back through the right geometry.
A box is the tight box of the pixels the object covers by half or more, in COCO's x, y, w,
h (pixel edges at integers), rounded to 1/100 px in the JSON. The demo detector trains on
a separate generator stream (`TRAIN_SPLIT`) and never sees these images.
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from evalharness.demo.synth import ASPECTS, Canvas, _background, _fill, _shape_mask

DET_SEED = 20261123
EVAL_SPLIT, TRAIN_SPLIT = 0, 1  # separate generator streams: training never sees eval images
CLASSES = ["red_disk", "blue_disk", "square", "triangle"]
# class -> (shape, hue or None for any hue)
RECIPES = {
    "red_disk": ("disk", 0.0),
    "blue_disk": ("disk", 0.62),
    "square": ("square", None),
    "triangle": ("triangle", None),
}


@dataclass(frozen=True)
class Scene:
    """An upright RGB image and its objects: boxes (x, y, w, h), class indices, areas."""

    pixels: np.ndarray
    boxes: list[tuple[float, float, float, float]]
    labels: list[int]
    areas: list[float]


def scene_rng(split: int, index: int, seed: int = DET_SEED) -> np.random.Generator:
    return np.random.default_rng([seed, split, index])


def _canvas(rng: np.random.Generator) -> tuple[int, int]:
    short = int(rng.integers(96, 161))
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]  # width / height
    if aspect >= 1:
        return short, int(round(short * aspect))
    return int(round(short / aspect)), short


def _overlaps(box, boxes, margin: float = 2.0) -> bool:
    x, y, w, h = box
    for bx, by, bw, bh in boxes:
        if (
            x < bx + bw + margin
            and bx < x + w + margin
            and y < by + bh + margin
            and by < y + h + margin
        ):
            return True
    return False


def render_scene(rng: np.random.Generator) -> Scene:
    """1-4 non-overlapping objects; each is drawn where the previous ones left room."""
    h, w = _canvas(rng)
    img = _background(rng, Canvas(h, w))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    boxes, labels, areas = [], [], []
    for _ in range(int(rng.integers(1, 5))):
        label = int(rng.integers(len(CLASSES)))
        shape, hue = RECIPES[CLASSES[label]]
        for _attempt in range(20):
            radius = float(rng.uniform(0.08, 0.2)) * min(h, w)
            cx, cy = rng.uniform(radius, w - radius), rng.uniform(radius, h - radius)
            guess = (cx - radius, cy - radius, 2 * radius, 2 * radius)
            if not _overlaps(guess, boxes):
                break
        else:
            continue
        rot = rng.uniform(0, 2 * np.pi)
        dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
        u = np.cos(rot) * dx + np.sin(rot) * dy
        v = -np.sin(rot) * dx + np.cos(rot) * dy
        mask = _shape_mask(shape, radius, dx, dy, u, v)
        fg = _fill(rng, "solid", radius, u, v, hue)
        img = img * (1 - mask[..., None]) + fg * mask[..., None]
        rows, cols = np.nonzero(mask >= 0.5)
        if len(rows) == 0:
            continue
        x0, y0 = int(cols.min()), int(rows.min())
        boxes.append((float(x0), float(y0), float(cols.max() + 1 - x0), float(rows.max() + 1 - y0)))
        labels.append(label)
        areas.append(float(mask.sum()))
    pixels = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return Scene(pixels, boxes, labels, areas)


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_demo_det(out_dir: Path, n: int = 240, seed: int = DET_SEED) -> dict:
    """Write n images and annotations.json (COCO instances format); returns the JSON."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        rng = scene_rng(EVAL_SPLIT, i, seed)
        scene = render_scene(rng)
        name = f"{i:04d}.jpg"
        (out_dir / "images" / name).write_bytes(encode_jpeg(scene.pixels, 90))
        h, w = scene.pixels.shape[:2]
        images.append(dict(id=i + 1, file_name=name, height=h, width=w))
        for box, label, area in zip(scene.boxes, scene.labels, scene.areas, strict=True):
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=i + 1,
                    category_id=label + 1,
                    bbox=[round(v, 2) for v in box],
                    area=round(area, 2),
                    iscrowd=0,
                )
            )
    data = dict(
        info=dict(description="evalharness demo detection set (generated)", version="1"),
        images=images,
        annotations=anns,
        categories=[dict(id=k + 1, name=c, supercategory="shape") for k, c in enumerate(CLASSES)],
    )
    (out_dir / "annotations.json").write_text(json.dumps(data, indent=None, separators=(",", ":")))
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("datasets/demo_det"))
    ap.add_argument("--n", type=int, default=240)
    args = ap.parse_args()
    data = write_demo_det(args.out, args.n)
    size = sum(p.stat().st_size for p in (args.out / "images").iterdir())
    print(f"wrote {len(data['images'])} images, {len(data['annotations'])} boxes "
          f"({size / 1e6:.2f} MB) to {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
