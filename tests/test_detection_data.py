"""Detection datasets: the COCO and YOLO loaders, and the committed demo set."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from evalharness.data.dataset import load_dataset
from evalharness.demo.demo_det import CLASSES, EVAL_SPLIT, encode_jpeg, render_scene, scene_rng
from evalharness.paths import PROJECT_ROOT

DEMO = PROJECT_ROOT / "datasets" / "demo_det"


def _cfg(**kw):
    return OmegaConf.create({"name": "t", **kw})


@pytest.fixture(scope="module")
def demo():
    return load_dataset(_cfg(kind="coco", root=str(DEMO), annotations="annotations.json"))


def test_coco_loader_reads_the_demo_set(demo):
    data = json.loads((DEMO / "annotations.json").read_text())
    assert demo.task == "detection" and demo.classes == CLASSES
    assert len(demo) == len(data["images"]) == 240
    assert demo.extra["category_ids"] == [1, 2, 3, 4]
    ids = [s.target.image_id for s in demo.samples]
    assert ids == sorted(ids)  # COCO's accumulation order
    n_boxes = sum(len(s.target) for s in demo.samples)
    assert n_boxes == len(data["annotations"]) > 500
    first = next(a for a in data["annotations"] if a["image_id"] == ids[0])
    s0 = demo.samples[0].target
    assert s0.bbox[0] == tuple(first["bbox"]) and s0.labels[0] == first["category_id"] - 1
    assert demo.samples[0].sample_id == "images/0000.jpg"


def test_coco_loader_sorts_images_and_flags_bad_annotations(tmp_path):
    data = dict(
        images=[dict(id=9, file_name="b.jpg"), dict(id=3, file_name="a.jpg")],
        annotations=[
            dict(id=1, image_id=9, category_id=7, bbox=[0, 0, 5, 5], iscrowd=0, area=25),
            dict(id=2, image_id=3, category_id=42, bbox=[0, 0, 5, 5], iscrowd=0, area=25),
            dict(id=3, image_id=3, category_id=7, bbox=[1, 1, 2, 2], iscrowd=1, area=3),
        ],
        categories=[dict(id=42, name="b"), dict(id=7, name="a")],
    )
    (tmp_path / "ann.json").write_text(json.dumps(data))
    ds = load_dataset(_cfg(kind="coco", root=str(tmp_path), annotations="ann.json"))
    assert ds.classes == ["a", "b"]  # ascending category id
    assert [s.sample_id for s in ds.samples] == ["images/a.jpg", "images/b.jpg"]
    assert ds.samples[0].target.labels == (1, 0) and ds.samples[0].target.iscrowd == (False, True)
    data["annotations"][0]["category_id"] = 5
    (tmp_path / "ann.json").write_text(json.dumps(data))
    ds = load_dataset(_cfg(kind="coco", root=str(tmp_path), annotations="ann.json"))
    assert ds.samples[1].problem == "annotation 1: unknown category 5"


def test_coco_loader_errors_are_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="COCO annotation file not found"):
        load_dataset(_cfg(kind="coco", root=str(tmp_path), annotations="x.json"))
    (tmp_path / "x.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="not a COCO instances file"):
        load_dataset(_cfg(kind="coco", root=str(tmp_path), annotations="x.json"))


def _as_yolo(dest, demo, n=20):
    """The first n demo images in YOLO layout (normalized centre boxes, 9 digits)."""
    data = json.loads((DEMO / "annotations.json").read_text())
    size = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    (dest / "images").mkdir(parents=True)
    (dest / "labels").mkdir()
    for s in demo.samples[:n]:
        shutil.copy(s.path, dest / "images" / s.path.name)
        w, h = size[s.target.image_id]
        lines = [
            f"{c} {(x + bw / 2) / w:.9f} {(y + bh / 2) / h:.9f} {bw / w:.9f} {bh / h:.9f}"
            for (x, y, bw, bh), c in zip(s.target.bbox, s.target.labels, strict=True)
        ]
        (dest / "labels" / f"{s.path.stem}.txt").write_text("\n".join(lines) + "\n")
    (dest / "data.yaml").write_text(
        "names:\n" + "".join(f"  {i}: {c}\n" for i, c in enumerate(CLASSES))
    )


def test_yolo_loader_gives_the_same_boxes_as_coco(demo, tmp_path):
    _as_yolo(tmp_path, demo)
    ds = load_dataset(_cfg(kind="yolo", root=str(tmp_path), names="data.yaml"))
    assert ds.classes == CLASSES and ds.task == "detection" and len(ds) == 20
    for a, b in zip(demo.samples[:20], ds.samples, strict=True):
        assert a.target.labels == b.target.labels
        np.testing.assert_allclose(np.array(a.target.bbox).reshape(-1, 4),
                                   np.array(b.target.bbox).reshape(-1, 4), atol=1e-5)  # fmt: skip


def test_yolo_loader_flags_bad_lines_and_reads_polygons(demo, tmp_path):
    _as_yolo(tmp_path, demo, n=3)
    labels = sorted((tmp_path / "labels").iterdir())
    labels[0].write_text("0 0.5 0.5 0.2\n")
    labels[1].write_text("7 0.5 0.5 0.2 0.2\n")
    labels[2].write_text("1 0.1 0.2 0.5 0.2 0.3 0.6\n")  # a segment: its bounding box
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES))
    ds = load_dataset(_cfg(kind="yolo", root=str(tmp_path)))
    assert ds.samples[0].problem.endswith("expected `class cx cy w h`, got 4 fields")
    assert ds.samples[1].problem.endswith("class 7 out of range 0..3")
    x, y, bw, bh = ds.samples[2].target.bbox[0]
    with Image.open(ds.samples[2].path) as im:
        iw, ih = im.size
    np.testing.assert_allclose([x / iw, y / ih, bw / iw, bh / ih], [0.1, 0.2, 0.4, 0.4])
    labels[2].unlink()  # no label file: an image without objects
    assert len(load_dataset(_cfg(kind="yolo", root=str(tmp_path))).samples[2].target) == 0


@pytest.mark.parametrize("i", [0, 1, 57, 239])
def test_demo_set_regenerates_byte_identical(i):
    scene = render_scene(scene_rng(EVAL_SPLIT, i))
    assert encode_jpeg(scene.pixels, 90) == (DEMO / "images" / f"{i:04d}.jpg").read_bytes()
    data = json.loads((DEMO / "annotations.json").read_text())
    boxes = [a["bbox"] for a in data["annotations"] if a["image_id"] == i + 1]
    assert boxes == [[round(v, 2) for v in b] for b in scene.boxes]


def test_demo_set_is_small_and_varied(demo):
    size = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert size < 1.5e6
    assert {len(s.target) for s in demo.samples} >= {1, 2, 3, 4}
    assert len({s.path.stat().st_size for s in demo.samples}) > 200  # not one image copied
    labels = np.concatenate([s.target.labels for s in demo.samples])
    assert np.bincount(labels, minlength=4).min() > 100
