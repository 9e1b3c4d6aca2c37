"""Dataset sources: manifest, class folders, ImageNet label files in their common formats."""

import pytest
from omegaconf import OmegaConf

from evalharness.data.dataset import load_dataset


def _cfg(**kw):
    return OmegaConf.create({"name": "t", "limit": None, **kw})


@pytest.fixture
def synsets(tmp_path):
    (tmp_path / "synsets.txt").write_text(
        "n01440764 tench, Tinca tinca\nn01443537 goldfish\nn01484850 great white shark\n"
    )
    for f in ["a.JPEG", "b.JPEG", "c.JPEG"]:
        (tmp_path / f).write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(
    "name,text",
    [
        ("val.txt", "a.JPEG 0\nb.JPEG 2\nc.JPEG 7\n"),
        ("dataset.txt", "./a.JPEG, 0\n./b.JPEG, 2\n./c.JPEG, 7\n"),
        (
            "LOC_val_solution.csv",
            "ImageId,PredictionString\na,n01440764 1 2 3 4\nb,n01484850 5 6 7 8\n"
            "c,n09999999 1 1 1 1\n",
        ),
    ],
)
def test_imagenet_label_formats(synsets, name, text):
    (synsets / name).write_text(text)
    ds = load_dataset(_cfg(kind="imagenet", root=str(synsets), labels=name, synsets="synsets.txt"))
    assert [s.label for s in ds.samples] == [0, 2, -1]
    assert ds.samples[2].problem is not None  # out of range / unknown synset, reported
    assert ds.classes == ["tench", "goldfish", "great white shark"]


def test_truncated_synset_list_is_padded_to_num_classes(synsets):
    (synsets / "synsets.txt").write_text("n01440764 tench\nn01443537 goldfish\nn04")
    (synsets / "val.txt").write_text("a.JPEG 0\nb.JPEG 3\n")
    cfg = _cfg(
        kind="imagenet", root=str(synsets), labels="val.txt", synsets="synsets.txt", num_classes=4
    )
    ds = load_dataset(cfg)
    assert ds.classes == ["tench", "goldfish", "class_2", "class_3"]
    assert [s.label for s in ds.samples] == [0, 3]


def test_missing_files_can_be_skipped(synsets):
    (synsets / "val.txt").write_text("a.JPEG 0\nzzz.JPEG 1\n")
    cfg = _cfg(kind="imagenet", root=str(synsets), labels="val.txt", synsets="synsets.txt")
    assert len(load_dataset(cfg)) == 2
    cfg.missing = "skip"
    assert len(load_dataset(cfg)) == 1


def test_folder_dataset_uses_sorted_folder_names(tmp_path):
    for cls in ["cat", "airplane"]:
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "0.jpg").write_bytes(b"")
        (tmp_path / cls / "notes.txt").write_text("ignored")
    ds = load_dataset(_cfg(kind="folder", root=str(tmp_path)))
    assert ds.classes == ["airplane", "cat"]
    assert [(s.sample_id, s.label) for s in ds.samples] == [("airplane/0.jpg", 0), ("cat/0.jpg", 1)]


def test_manifest_with_label_names_reports_unknown_ones(tmp_path):
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    (tmp_path / "m.csv").write_text("path,label_name\nx.jpg,dog\ny.jpg,cow\n")
    ds = load_dataset(
        _cfg(kind="manifest", root=str(tmp_path), manifest="m.csv", classes="classes.txt")
    )
    assert [s.label for s in ds.samples] == [1, -1]
    assert ds.samples[1].problem == "unknown class name 'cow'"


def test_manifest_label_out_of_range(tmp_path):
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    (tmp_path / "m.csv").write_text("path,label\nx.jpg,1\ny.jpg,5\n")
    ds = load_dataset(
        _cfg(kind="manifest", root=str(tmp_path), manifest="m.csv", classes="classes.txt")
    )
    assert ds.samples[1].problem == "label 5 out of range 0..1"


def test_unknown_kind_and_missing_manifest_are_one_line(tmp_path):
    with pytest.raises(KeyError, match="unknown dataset kind 'zip'"):
        load_dataset(_cfg(kind="zip", root=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        load_dataset(_cfg(kind="manifest", root=str(tmp_path), manifest="m.csv"))


def test_limit_takes_the_first_images_or_spreads_them_over_the_classes(tmp_path):
    for cls in ["a", "b", "c"]:
        (tmp_path / cls).mkdir()
        for i in range(4):
            (tmp_path / cls / f"{i}.jpg").write_bytes(b"")
    first = load_dataset(_cfg(kind="folder", root=str(tmp_path), limit=3))
    assert [s.sample_id for s in first.samples] == ["a/0.jpg", "a/1.jpg", "a/2.jpg"]
    spread = load_dataset(_cfg(kind="folder", root=str(tmp_path), limit=3, limit_spread=True))
    assert [s.sample_id for s in spread.samples] == ["a/0.jpg", "b/0.jpg", "c/0.jpg"]
