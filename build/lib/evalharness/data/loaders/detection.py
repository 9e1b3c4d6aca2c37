"""Object-detection datasets: COCO JSON (`kind: coco`) and YOLO txt labels (`kind: yolo`).

Both give every image a `BoxTarget` in one convention, COCO's, so the metric code has one
path: boxes as x, y, w, h in source pixels of the upright image, a class index into
`Dataset.classes`, iscrowd, area and an annotation id (>= 1: pycocotools treats a match
to id 0 as no match).

Class indices, not COCO category ids, are what targets and predictions carry: the classes
are the dataset's categories in ascending id order, which is the order COCO detectors
(YOLOX, NanoDet, mmdet, ultralytics) number their 80 outputs in. COCOeval treats every
category on its own, so evaluating on indices gives the same numbers as on the sparse ids;
`Dataset.extra["category_ids"]` keeps the ids for writing a COCO results file.

Samples are in ascending image id: pycocotools accumulates images in that order, and the
order decides ties between equal scores, so the bootstrap's identity resample can equal
the library's figure exactly.

A target is made of tuples, not arrays: the dataset hash covers `repr(target)`, and an
array's repr elides the middle of long arrays.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalharness.data.dataset import (
    IMAGE_SUFFIXES,
    Dataset,
    Sample,
    register_loader,
    relative_id,
)
from evalharness.paths import resolve_path

TASK = "detection"


@dataclass(frozen=True)
class BoxTarget:
    """The annotations of one image, COCO's convention (see module doc)."""

    image_id: int
    bbox: tuple[tuple[float, float, float, float], ...] = ()  # x, y, w, h, source pixels
    labels: tuple[int, ...] = ()  # index into Dataset.classes
    iscrowd: tuple[bool, ...] = ()
    area: tuple[float, ...] = ()
    ann_ids: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def annotations(self) -> list[dict]:
        """COCO annotation dicts (category_id = class index) for pycocotools."""
        return [
            dict(
                id=a, image_id=self.image_id, category_id=c, bbox=list(b), area=ar, iscrowd=int(cr)
            )  # fmt: skip
            for a, b, c, cr, ar in zip(
                self.ann_ids, self.bbox, self.labels, self.iscrowd, self.area, strict=True
            )
        ]


def _missing(cfg: Mapping[str, Any], what: str, path: Path) -> FileNotFoundError:
    return FileNotFoundError(f"dataset '{cfg['name']}': {what} not found: {path}")


# ---------------------------------------------------------------------------------- COCO


def _coco_json(cfg: Mapping[str, Any], root: Path) -> dict:
    path = root / str(cfg.get("annotations", "annotations.json"))
    if not path.is_file():
        raise _missing(cfg, "COCO annotation file", path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: not a COCO instances file (no '{key}' list)")
    return data


def _coco_box(ann: dict) -> tuple[float, float, float, float] | None:
    box = ann.get("bbox")
    if not isinstance(box, list | tuple) or len(box) != 4:
        return None
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        return None
    return (x, y, w, h) if all(math.isfinite(v) for v in (x, y, w, h)) else None


def _coco_target(image_id: int, anns: list[dict], index_of: dict[int, int]):
    """(target, problem): an annotation with an unknown category or a bad box is a problem."""
    boxes, labels, crowd, area, ids = [], [], [], [], []
    for a in sorted(anns, key=lambda a: a.get("id", 0)):
        box = _coco_box(a)
        cat = a.get("category_id")
        if cat not in index_of:
            return BoxTarget(image_id), f"annotation {a.get('id')}: unknown category {cat}"
        if box is None:
            return BoxTarget(image_id), f"annotation {a.get('id')}: bbox {a.get('bbox')!r}"
        if int(a.get("id", 0)) < 1:
            return BoxTarget(image_id), f"annotation id {a.get('id')!r} is not a positive integer"
        boxes.append(box)
        labels.append(index_of[cat])
        crowd.append(bool(a.get("iscrowd", 0)))
        area.append(float(a.get("area", box[2] * box[3])))
        ids.append(int(a["id"]))
    target = BoxTarget(image_id, tuple(boxes), tuple(labels), tuple(crowd), tuple(area), tuple(ids))
    return target, None


@register_loader("coco")
def load_coco(cfg: Mapping[str, Any]) -> Dataset:
    """`root` with `annotations` (an instances_*.json) and `images` (the image folder)."""
    root = resolve_path(cfg["root"])
    if not root.is_dir():
        raise _missing(cfg, "folder", root)
    data = _coco_json(cfg, root)
    images = root / str(cfg.get("images", "images"))
    cats = sorted(data["categories"], key=lambda c: c["id"])
    index_of = {c["id"]: i for i, c in enumerate(cats)}
    by_image: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        by_image.setdefault(a.get("image_id"), []).append(a)
    samples = []
    for img in sorted(data["images"], key=lambda im: im["id"]):
        path = images / img["file_name"]
        target, problem = _coco_target(int(img["id"]), by_image.get(img["id"], []), index_of)
        samples.append(
            Sample(len(samples), relative_id(path, root), path, problem=problem, target=target)
        )
    extra = dict(format="coco", category_ids=[c["id"] for c in cats])
    return Dataset(cfg["name"], samples, [str(c["name"]) for c in cats], "", TASK, extra=extra)


# ---------------------------------------------------------------------------------- YOLO


def read_names(path: Path) -> list[str]:
    """Class names: a text file (one a line) or a YOLO data YAML (`names:` list or map)."""
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # PyYAML (a dependency of Hydra's OmegaConf)

        names = (yaml.safe_load(path.read_text()) or {}).get("names")
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names, key=int)]
        if isinstance(names, list):
            return [str(n) for n in names]
        raise ValueError(f"{path}: no `names:` list or map")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def upright_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of the image as shown (EXIF orientation applied), from its header;
    YOLO labels are normalized to that size (ultralytics' exif_size). None: unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
            return w, h
    except (OSError, ValueError, SyntaxError):
        return None


def parse_yolo_line(text: str, n_classes: int) -> tuple[int, tuple[float, float, float, float]]:
    """`class cx cy w h` (normalized) or `class x1 y1 x2 y2 ...` (a polygon, normalized):
    -> (class, normalized x, y, w, h). Raises ValueError on anything else."""
    parts = text.split()
    try:
        cls_f = float(parts[0])
        vals = [float(v) for v in parts[1:]]
    except (ValueError, IndexError):
        raise ValueError(f"not numbers: {text!r}") from None
    if not cls_f.is_integer() or not 0 <= cls_f < n_classes:
        raise ValueError(f"class {parts[0]} out of range 0..{n_classes - 1}")
    if len(vals) == 4:
        cx, cy, w, h = vals
        box = (cx - w / 2, cy - h / 2, w, h)
    elif len(vals) >= 6 and len(vals) % 2 == 0:  # a segment: its bounding box
        xs, ys = vals[0::2], vals[1::2]
        box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    else:
        raise ValueError(f"expected `class cx cy w h`, got {len(parts)} fields")
    if not all(math.isfinite(v) for v in box) or box[2] < 0 or box[3] < 0:
        raise ValueError(f"bad box {vals}")
    return int(cls_f), box


def _yolo_target(image_id: int, label: Path, size, n_classes: int):
    if not label.exists():  # no label file: an image without objects (YOLO's convention)
        return BoxTarget(image_id), None
    if size is None:
        return BoxTarget(image_id), "image header unreadable: labels cannot be scaled"
    w, h = size
    boxes, labels = [], []
    for lineno, line in enumerate(label.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            cls, (x, y, bw, bh) = parse_yolo_line(line, n_classes)
        except ValueError as e:
            return BoxTarget(image_id), f"{label.name}:{lineno}: {e}"
        boxes.append((x * w, y * h, bw * w, bh * h))
        labels.append(cls)
    n = len(labels)
    return BoxTarget(
        image_id,
        tuple(boxes),
        tuple(labels),
        (False,) * n,
        tuple(b[2] * b[3] for b in boxes),
        tuple(range(1, n + 1)),
    ), None


@register_loader("yolo")
def load_yolo(cfg: Mapping[str, Any]) -> Dataset:
    """`root` with `images/` and `labels/` (same relative paths, .txt) and a `names` file."""
    root = resolve_path(cfg["root"])
    images = root / str(cfg.get("images", "images"))
    labels = root / str(cfg.get("labels", "labels"))
    names_path = root / str(cfg.get("names", "classes.txt"))
    for what, p in (("image folder", images), ("class names file", names_path)):
        if not p.exists():
            raise _missing(cfg, what, p)
    classes = read_names(names_path)
    if not classes:
        raise ValueError(f"{names_path}: no class names")
    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    samples = []
    for i, f in enumerate(files):
        label = (labels / f.relative_to(images)).with_suffix(".txt")
        size = upright_size(f) if label.exists() else None
        target, problem = _yolo_target(i + 1, label, size, len(classes))
        samples.append(Sample(i, relative_id(f, root), f, problem=problem, target=target))
    return Dataset(cfg["name"], samples, classes, "", TASK, extra=dict(format="yolo"))
