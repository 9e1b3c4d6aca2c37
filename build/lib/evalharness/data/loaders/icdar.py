"""ICDAR 2015 text localisation sets: a folder of images and one ground-truth file per image.

`gt_<image stem>.txt` holds one word a line, `x1,y1,x2,y2,x3,y3,x4,y4,transcription`
(UTF-8, often with a byte-order mark: read as utf-8-sig). The transcription `###` marks a
"do not care" region: a detection mostly inside one is ignored, and the region is never
counted as a miss (tasks/text_detection/protocol.py). Transcriptions may contain commas, so
everything after the eighth number is the transcription.

Images are ordered by the number in their name (img_2 before img_10), so `dataset.limit=N`
takes the first N of the official numbering. A missing or unreadable ground-truth file makes
that sample an error row (its words cannot be counted), not a silently empty image.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalharness.data.dataset import IMAGE_SUFFIXES, Dataset, Sample, register_loader, relative_id
from evalharness.paths import resolve_path

DONT_CARE = "###"
N_COORDS = 8  # ICDAR 2015: quadrilaterals


@dataclass(frozen=True)
class TextTarget:
    """The words of one image: polygons as flat (x1, y1, ..., xk, yk) and don't-care flags."""

    polygons: tuple[tuple[float, ...], ...]
    dont_care: tuple[bool, ...]

    @property
    def n_care(self) -> int:
        return sum(not d for d in self.dont_care)


def parse_gt(text: str, name: str) -> TextTarget:
    """One ground-truth file's words; a malformed line raises ValueError naming it."""
    polys, dont_care = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(",")
        try:
            coords = tuple(float(v) for v in parts[:N_COORDS])
        except ValueError:
            coords = ()
        if len(parts) <= N_COORDS or len(coords) != N_COORDS:
            raise ValueError(
                f"{name} line {lineno}: expected 8 coordinates and a transcription, "
                f"got {line[:60]!r}"
            )
        polys.append(coords)
        dont_care.append(",".join(parts[N_COORDS:]) == DONT_CARE)
    return TextTarget(tuple(polys), tuple(dont_care))


def _natural_key(path: Path) -> tuple:
    """img_2 before img_10: digit runs compare as numbers."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def _target(gt_file: Path) -> tuple[TextTarget | None, str | None]:
    if not gt_file.is_file():
        return None, f"no ground-truth file {gt_file.name}"
    try:
        return parse_gt(gt_file.read_text(encoding="utf-8-sig"), gt_file.name), None
    except (ValueError, UnicodeDecodeError) as e:
        return None, str(e)


@register_loader("icdar2015")
def load_icdar2015(cfg: Mapping[str, Any]) -> Dataset:
    root = resolve_path(cfg["root"])
    images = root / cfg.get("images", "ch4_test_images")
    gt_dir = root / cfg.get("gt", "Challenge4_Test_Task1_GT")
    for folder in (images, gt_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"dataset '{cfg['name']}': folder not found: {folder}")
    pattern = str(cfg.get("gt_pattern", "gt_{stem}.txt"))
    files = sorted(
        (f for f in images.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
    )
    samples = []
    for i, f in enumerate(files):
        target, problem = _target(gt_dir / pattern.format(stem=f.stem))
        samples.append(Sample(i, relative_id(f, root), f, problem=problem, target=target))
    return Dataset(cfg["name"], samples, ["text"], "", task="text_detection")
