"""The gallery's thumbnails: written once per image and config into the run dir, then reused.

For every image whose outcome flips between A and B, each side gets: what the model saw (its
host tensor read back as the model reads it, report/views.py, at model resolution) and the
task's drawings of its output (`Task.draw`: top-5 bars; boxes or polygons on the source
image, truth in blue; the probability and binarized maps). The pair gets the amplified |A - B|
of the two inputs. The raw outputs come from re-running just these images through each
config's session (`ConfigSource.session`), as the inputs come from re-running its pipeline:
nothing per image is stored by the sweep beyond the predictions.

Files live under report_assets/thumbs/v1/<config>/ (`index.json` says which image has which
files), so a second report, for another pair that shares a config, or for the same pair
after a change elsewhere, draws nothing twice; the page loads them lazily, page by page.
Model views up to 512 x 512 are PNG (lossless: a one-level difference stays visible), larger
ones JPEG quality 90; the |A - B| map is computed from the arrays, never from the files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalharness.analysis.flips import ConfigRef
from evalharness.analysis.ondemand import ConfigSource
from evalharness.preprocess.errors import StageError
from evalharness.preprocess.geometry import Frame
from evalharness.report.views import Reading, difference, model_view
from evalharness.tasks.drawing import Bars, DrawInput, Heat, Overlay, Panel

log = logging.getLogger("evalharness")

THUMBS = ("report_assets", "thumbs", "v1")  # bump the version when the drawings change
LOSSLESS_PIXELS = 512 * 512
MAX_SIDE = 640  # drawings on the source image and maps are scaled down to this
CHUNK = 8  # images drawn per step: their tensors are held at once (a 960 px text image
# is ~12 MB per config as float), inferred in batches of equal shape
BATCH = 8
TRUTH, PRED, IGNORED = (32, 96, 255), (255, 32, 32), (150, 150, 150)


def sample_key(sample_id: str) -> str:
    """A file-name-safe key for a sample id (ids are relative paths)."""
    return hashlib.sha1(sample_id.encode()).hexdigest()[:16]


def _save(img: np.ndarray, folder: Path, stem: str, lossless: bool | None = None) -> str:
    from PIL import Image

    h, w = img.shape[:2]
    lossless = h * w <= LOSSLESS_PIXELS if lossless is None else lossless
    name = f"{stem}.png" if lossless else f"{stem}.jpg"
    im = Image.fromarray(img)
    if lossless:
        im.save(folder / name, compress_level=3)
    else:
        im.convert("RGB").save(folder / name, quality=90)
    return name


@functools.lru_cache(maxsize=4)
def _font(size: int = 11):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _shrink(img: np.ndarray, max_side: int = MAX_SIDE, nearest: bool = False):
    from PIL import Image

    im = Image.fromarray(img)
    scale = min(1.0, max_side / max(im.size))
    if scale < 1.0:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR)
    return im, scale


def render_overlay(panel: Overlay) -> np.ndarray:
    """Boxes and polygons on the image: truth blue, ignored regions grey, the config's red."""
    from PIL import ImageDraw

    im, scale = _shrink(np.ascontiguousarray(panel.image[..., :3]).astype(np.uint8))
    im = im.convert("RGB")
    draw = ImageDraw.Draw(im)
    width = max(2, round(max(im.size) / 320))
    font = _font()
    # truth first, so the config's shapes are on top
    for shape in sorted(panel.shapes, key=lambda s: not s.truth):
        colour = IGNORED if shape.ignored else TRUTH if shape.truth else PRED
        pts = np.asarray(shape.points, float).reshape(-1, 2) * scale
        if shape.box:
            (x1, y1), (x2, y2) = pts[0], pts[1]
            draw.rectangle([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)],
                           outline=colour, width=width)  # fmt: skip
        elif len(pts) >= 2:
            draw.line([*map(tuple, pts), tuple(pts[0])], fill=colour, width=width)
        if shape.text and len(pts):
            x, y = float(pts[:, 0].min()), float(pts[:, 1].min())
            box = draw.textbbox((x, y), shape.text, font=font, anchor="lb")
            draw.rectangle(box, fill=colour)
            draw.text((x, y), shape.text, fill=(255, 255, 255), font=font, anchor="lb")
    return np.asarray(im)


def render_bars(panel: Bars) -> np.ndarray:
    """Top-k bars, the true class green, others grey-blue; an unknown value reads '?'."""
    from PIL import Image, ImageDraw

    row, label_w, bar_w = 20, 120, 110
    im = Image.new("RGB", (label_w + bar_w + 46, row * len(panel.labels) + 6), "white")
    draw = ImageDraw.Draw(im)
    font = _font()
    for k, (label, value, marked) in enumerate(
        zip(panel.labels, panel.values, panel.marked, strict=True)
    ):
        y = 3 + k * row
        text = label if len(label) <= 18 else label[:17] + "~"
        draw.text((4, y + row / 2), text, fill=(20, 20, 20), font=font, anchor="lm")
        if np.isfinite(value):
            colour = (60, 160, 80) if marked else (90, 120, 170)
            draw.rectangle([label_w, y + 3, label_w + max(1, value * bar_w), y + row - 3],
                           fill=colour)  # fmt: skip
            shown = f"{value:.2f}"
        else:
            shown = "?"
        if marked:
            draw.rectangle([1, y + 1, im.width - 2, y + row - 1], outline=(60, 160, 80))
        draw.text((label_w + bar_w + 4, y + row / 2), shown, fill=(20, 20, 20), font=font,
                  anchor="lm")  # fmt: skip
    return np.asarray(im)


def render_heat(panel: Heat) -> np.ndarray:
    """A 0..1 map in viridis (a 0/1 map stays crisp), scaled down to MAX_SIDE."""
    from matplotlib import colormaps

    v = np.clip(np.nan_to_num(np.asarray(panel.values, np.float32)), 0, 1)
    binary = bool(np.isin(v, (0.0, 1.0)).all())
    lut = (colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    img = lut[np.rint(v * 255).astype(np.uint8)]
    im, _ = _shrink(img, nearest=binary)
    return np.asarray(im)


def render(panel: Panel) -> tuple[np.ndarray, bool]:
    """A panel as an RGB image, and whether it should stay lossless (maps, bars)."""
    if isinstance(panel, Overlay):
        return render_overlay(panel), False
    if isinstance(panel, Bars):
        return render_bars(panel), True
    if isinstance(panel, Heat):
        return render_heat(panel), True
    raise TypeError(f"unknown panel {type(panel).__name__}")


@dataclass
class Side:
    """One config of the page's pair, as the gallery draws it."""

    name: str  # "A" | "B"
    ref: ConfigRef
    configs: ConfigSource
    key: str  # its thumbnails' folder name
    dataset: Any  # the run's Dataset (samples by id: paths, labels, targets)
    classes: Sequence[str]
    reading: Reading  # how the model reads an input (the reference's mean/std, order)
    _spec: Any = field(default=None, repr=False)
    _session: Any = field(default=None, repr=False)
    _session_note: str | None = field(default=None, repr=False)
    _samples: dict | None = field(default=None, repr=False)

    @property
    def spec(self):
        if self._spec is None:
            self._spec = self.configs.spec(self.ref.factors)
        return self._spec

    def sample(self, sample_id: str):
        if self._samples is None:
            samples = self.dataset.samples if self.dataset is not None else []
            self._samples = {s.sample_id: s for s in samples}
        return self._samples.get(sample_id)

    def outputs(self, tensors: list[np.ndarray]) -> list[dict[str, np.ndarray] | None]:
        """The model's raw outputs by role for each host tensor, inferred in batches of
        equal shapes (the session is loaded on first use; a failure is noted, not raised)."""
        from evalharness.engine.infer import infer_batched

        if self._session is None and self._session_note is None:
            try:
                self._session = self.configs.session(self.ref.factors)
            except Exception as e:  # any reason a variant cannot load here: said on the page
                self._session_note = f"{self.name}'s raw outputs not shown: {e}"
                log.warning("report: %s", self._session_note)
        if self._session is None:
            return [None] * len(tensors)
        task, model = self.ref.results.task, self.spec.variant.model
        out: list[dict[str, np.ndarray] | None] = [None] * len(tensors)
        by_shape: dict[tuple, list[int]] = {}
        for i, t in enumerate(tensors):
            by_shape.setdefault((t.shape, t.dtype.str), []).append(i)
        for ids in by_shape.values():
            raw = infer_batched(self._session, np.stack([tensors[i] for i in ids]), BATCH)
            by_role = task.read_outputs(raw, model)
            for j, i in enumerate(ids):
                out[i] = {k: np.asarray(v)[j] for k, v in by_role.items()}
        return out

    @property
    def note(self) -> str | None:
        return self._session_note


@dataclass
class Seen:
    """One image through one config: the source image, the model's view, its framing."""

    source: np.ndarray
    view: np.ndarray
    frame: Frame


class Index:
    """index.json of one thumbnails folder: which files an image has there."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "index.json"
        try:
            self.entries: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            self.entries = {}
        self.changed = False

    def has(self, key: str) -> bool:
        e = self.entries.get(key)
        if e is None:
            return False
        files = [e.get("input"), e.get("file"), *(p["file"] for p in e.get("panels", []))]
        return all((self.folder / f).exists() for f in files if f)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.entries[key] = entry
        self.changed = True

    def save(self) -> None:
        if self.changed:
            (self.folder / "index.json").write_text(json.dumps(self.entries, indent=0))
            self.changed = False


def see_image(side: Side, sample) -> Seen:
    """Run one image through the side's pipeline; the view as the model reads it."""
    x: Any = sample.path
    source = None
    for stage in side.spec.stages:
        x = stage(x)
        if stage.kind == "decode":
            source = np.asarray(x)
    return Seen(source, model_view(x.pixels, side.spec, side.reading), x)


def draw_side(side: Side, index: Index, sample, seen: Seen, row, outputs) -> dict[str, Any]:
    """Write one side's files for one image; returns its index entry."""
    key = sample_key(sample.sample_id)
    entry: dict[str, Any] = {"hw": list(seen.view.shape[:2])}
    entry["input"] = _save(seen.view, index.folder, f"{key}.in")
    item = DrawInput(sample, seen.source, row, outputs, seen.frame.geometry, side.classes)
    panels = []
    for k, panel in enumerate(side.ref.results.task.draw(item)):
        img, lossless = render(panel)
        panels.append({"file": _save(img, index.folder, f"{key}.p{k}", lossless),
                       "title": panel.title})  # fmt: skip
    entry["panels"] = panels
    if outputs is None and side.note:
        entry["note"] = side.note
    return entry


@dataclass
class Card:
    """One flipped image in the gallery (paths relative to the run dir)."""

    sample_id: str
    a: dict[str, Any]
    b: dict[str, Any]
    diff: dict[str, Any]


def _relative(entry: dict[str, Any], folder: str) -> dict[str, Any]:
    out = dict(entry)
    for k in ("input", "file"):
        if out.get(k):
            out[k] = f"{folder}/{out[k]}"
    out["panels"] = [{**p, "file": f"{folder}/{p['file']}"} for p in entry.get("panels", [])]
    return out


def build_cards(page_dir: Path, a: Side, b: Side, sample_ids: list[str], rows_a: dict,
                rows_b: dict) -> list[Card]:  # fmt: skip
    """Every flipped image's card; files already written for an image and config are kept."""
    base = Path(page_dir).joinpath(*THUMBS)
    idx_a, idx_b = Index(base / a.key), Index(base / b.key)
    idx_d = Index(base / "diff" / f"{a.key}--{b.key}")
    todo = [s for s in sample_ids
            if not all(i.has(sample_key(s)) for i in (idx_a, idx_b, idx_d))]  # fmt: skip
    for k in range(0, len(todo), CHUNK):
        _draw_chunk(todo[k : k + CHUNK], (a, idx_a, rows_a), (b, idx_b, rows_b), idx_d)
        for idx in (idx_a, idx_b, idx_d):
            idx.save()  # an interrupted report keeps what it drew
    rel = "/".join(THUMBS)
    cards = []
    for sid in sample_ids:
        key = sample_key(sid)
        cards.append(Card(
            sid,
            _relative(idx_a.entries.get(key, {}), f"{rel}/{a.key}"),
            _relative(idx_b.entries.get(key, {}), f"{rel}/{b.key}"),
            _relative(idx_d.entries.get(key, {}), f"{rel}/diff/{a.key}--{b.key}"),
        ))  # fmt: skip
    return cards


def _draw_chunk(ids: list[str], *sides_and_diff) -> None:
    """Run a few images through both configs, infer them in batches, write the files."""
    *sides, idx_d = sides_and_diff
    seen: dict[str, dict[str, Seen]] = {}
    for side, idx, rows in sides:
        got = seen.setdefault(side.name, {})
        for sid in ids:
            sample = side.sample(sid)
            if sample is None:
                idx.put(sample_key(sid), {"note": f"{side.name}: not in this run's dataset here"})
                continue
            try:
                got[sid] = see_image(side, sample)
            except (StageError, OSError, ValueError) as e:
                idx.put(sample_key(sid), {"note": f"{side.name}: {e}"})
        need = [sid for sid in got if not idx.has(sample_key(sid))]
        outputs = side.outputs([got[sid].frame.pixels for sid in need])
        for sid, out in zip(need, outputs, strict=True):
            entry = draw_side(side, idx, side.sample(sid), got[sid], rows.get(sid), out)
            idx.put(sample_key(sid), entry)
    for sid in ids:
        key = sample_key(sid)
        sa, sb = seen.get("A", {}).get(sid), seen.get("B", {}).get(sid)
        if sa is None or sb is None:
            idx_d.put(key, {"caption": "no difference: an input is missing"})
            continue
        d = difference(sa.view, sb.view, sa.frame.geometry, sb.frame.geometry)
        idx_d.put(key, {"file": _save(d.image(), idx_d.folder, key, lossless=True),
                        "caption": d.caption()})  # fmt: skip
