"""Write the demo dataset: real image files in the formats deployments meet, plus a manifest.

`python -m evalharness.demo.demo` regenerates datasets/demo/ byte for byte (same seed, same
Pillow). The file mix is deliberate: most files are 4:2:0 baseline JPEGs; a share are
progressive; a few carry an EXIF orientation tag (pixels stored rotated, the tag says how to
show them upright: the label is for the upright picture); a few are grayscale JPEG/PNG; one
PNG has an alpha channel.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from evalharness.demo.synth import CLASSES, GRAYSCALE_SAFE, render

DEMO_SEED = 20261122
EVAL_SPLIT, TRAIN_SPLIT = 0, 1  # separate generator streams: training never sees eval images

# EXIF orientation -> the transpose that turns the upright picture into the stored pixels
# (the inverse of what a viewer applies when it honours the tag).
STORE_FOR_ORIENTATION = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class FileKind:
    fmt: str  # "jpeg" | "png"
    mode: str  # "RGB" | "L" | "RGBA"
    progressive: bool = False
    subsampling: int = 2  # Pillow: 0 = 4:4:4, 2 = 4:2:0
    orientation: int = 1

    @property
    def tag(self) -> str:
        parts = [self.fmt, self.mode.lower()]
        if self.fmt == "jpeg":
            parts.append("progressive" if self.progressive else "baseline")
            parts.append("444" if self.subsampling == 0 else "420")
        if self.orientation != 1:
            parts.append(f"exif{self.orientation}")
        return "-".join(parts)


def file_kind(i: int, label_name: str) -> FileKind:
    """The format of eval file number i: a fixed, readable schedule rather than random draws."""
    gray_ok = label_name in GRAYSCALE_SAFE
    if i == 7:
        return FileKind("png", "RGBA")
    if i % 97 == 11:
        return FileKind("png", "RGB")
    if gray_ok and i % 61 == 5:
        return FileKind("png", "L")
    if gray_ok and i % 43 == 2:
        return FileKind("jpeg", "L")
    if i % 53 == 9:
        return FileKind("jpeg", "RGB", orientation=(3, 6, 8)[(i // 53) % 3])
    if i % 41 == 4:
        return FileKind("jpeg", "RGB", subsampling=0)
    return FileKind("jpeg", "RGB", progressive=(i % 5 == 1))


def _exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def encode(upright: np.ndarray, kind: FileKind, quality: int, rng: np.random.Generator) -> bytes:
    img = Image.fromarray(upright)
    if kind.mode == "L":
        img = img.convert("L")
    elif kind.mode == "RGBA":
        alpha = np.full(upright.shape[:2], 255, np.uint8)
        m = max(2, min(upright.shape[:2]) // 10)  # transparent frame: the alpha policy shows there
        alpha[:m, :] = alpha[-m:, :] = 0
        alpha[:, :m] = alpha[:, -m:] = 0
        img = Image.fromarray(np.dstack([upright, alpha]), "RGBA")
    if kind.orientation != 1:
        img = img.transpose(STORE_FOR_ORIENTATION[kind.orientation])
    buf = io.BytesIO()
    if kind.fmt == "png":
        img.save(buf, format="PNG", optimize=False)
    else:
        opts = dict(quality=quality, progressive=kind.progressive, optimize=kind.progressive)
        if kind.mode != "L":
            opts["subsampling"] = kind.subsampling
        if kind.orientation != 1:
            opts["exif"] = _exif_with_orientation(kind.orientation)
        img.save(buf, format="JPEG", **opts)
    return buf.getvalue()


def sample_rng(split: int, index: int, seed: int = DEMO_SEED) -> np.random.Generator:
    return np.random.default_rng([seed, split, index])


def write_demo(out_dir: Path, per_class: int = 80, seed: int = DEMO_SEED) -> pd.DataFrame:
    """Write per_class images of every class plus manifest.csv; returns the manifest."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    n = per_class * len(CLASSES)
    for i in range(n):
        label = i % len(CLASSES)  # interleaved, so any prefix of the set is class-balanced
        rng = sample_rng(EVAL_SPLIT, i, seed)
        upright = render(label, rng)
        kind = file_kind(i, CLASSES[label])
        data = encode(upright, kind, quality=int(rng.integers(80, 93)), rng=rng)
        ext = "png" if kind.fmt == "png" else "jpg"
        rel = f"images/{i:04d}_{CLASSES[label]}.{ext}"
        (out_dir / rel).write_bytes(data)
        rows.append(
            dict(
                sample_id=f"{i:04d}",
                path=rel,
                label=label,
                label_name=CLASSES[label],
                sha256=hashlib.sha256(data).hexdigest(),
                height=upright.shape[0],
                width=upright.shape[1],
                kind=kind.tag,
            )
        )
    manifest = pd.DataFrame(rows)
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    (out_dir / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("datasets/demo"))
    ap.add_argument("--per-class", type=int, default=80)
    args = ap.parse_args()
    m = write_demo(args.out, args.per_class)
    size = sum((args.out / p).stat().st_size for p in m.path)
    print(f"wrote {len(m)} images ({size / 1e6:.1f} MB) to {args.out}")
    print(m.kind.value_counts().to_string())


if __name__ == "__main__":
    main()
