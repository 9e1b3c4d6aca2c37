"""Where in the network two deployments part, on the images that flip between them.

Two probes (probes.py) run the same host tensors; every layer both expose (named as in a
reference LayerGraph) is compared per image (metrics.py). Flipped images (top-1 differs
between A and B) are summarised apart from control images (same top-1), because the
question is not "how large is the error" but "where is it larger on the images that
flip than on those that do not". Per flipped image, the first layer in graph order whose
relative L2 error exceeds `threshold` is counted (a histogram over layers); per layer, the
error its own step adds is its error minus the largest error of the compared tensors it
reads (graph.py's Step): a layer inheriting its input's error adds nothing.

The observer check runs each probe with and without the extra outputs on the very same
images and reports how much the final outputs moved: a layerwise figure from a run whose
outputs moved describes a slightly different deployment, and the result says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evalharness.layerwise.graph import LayerGraph
from evalharness.layerwise.metrics import METRICS, per_image, summary
from evalharness.layerwise.probes import ObserverCheck, Probe

SETS = ("flipped", "control")
NONE = "(none)"
SEPARATES = 1.2  # flipped median error this many times the control's: the layer separates


@dataclass(frozen=True)
class LayerDivergence:
    """The layerwise comparison of deployments A and B (see the module docstring)."""

    a: str
    b: str
    table: pd.DataFrame = field(repr=False)  # one row per compared layer, in graph order
    first_divergence: pd.Series = field(repr=False)  # flipped images per first layer > thr
    first_divergence_control: pd.Series = field(repr=False)
    top_added: tuple[tuple[str, float], ...]  # (layer, median added rel L2; flipped images)
    observer: tuple[ObserverCheck, ObserverCheck]
    unmatched_a: Mapping[str, str] = field(repr=False)  # tensor -> why it is not compared
    unmatched_b: Mapping[str, str] = field(repr=False)
    threshold: float
    n_flipped: int
    n_control: int
    images: pd.DataFrame = field(repr=False)  # per image: set, position, first layer, top-1s
    observer_tol: float = 1e-4  # final outputs moved by more: the verdict says so

    @property
    def parting_layer(self) -> str | None:
        """The most frequent first divergence among flipped images (earliest on a tie)."""
        counts = self.first_divergence.drop(NONE, errors="ignore")
        counts = counts[counts > 0]
        return None if counts.empty else str(counts.idxmax())

    @property
    def verdict(self) -> str:
        """One line: where A and B part, and how much more the flipped images diverge there.

        When reading the parting layer moved a probe's final outputs by more than
        `observer_tol` (observer check; float reordering moves fp32 logits by ~1e-5), the
        line says so and names the nearest layers on either side that were read without
        moving them, with their errors: the parting lies between those.
        """
        layer = self.parting_layer
        top = self.top_added[0][0] if self.top_added else self.table.index[-1]
        if self.n_flipped == 0:
            return (
                f"{self.a} and {self.b}: no flipped image to analyse; on the controls the most "
                f"added error is at layer {top} ({self._where(top)})"
            )
        if layer is None:
            return (
                f"{self.a} and {self.b} stay within rel L2 {self.threshold:g} on every flipped "
                f"image; the most added error is at layer {top} ({self._where(top)})"
            )
        line = (
            f"{self.a} and {self.b} part at layer {layer} ({self._where(layer)}): its error "
            f"on flipped images is {_times(self.table.at[layer, 'ratio'])} the control's"
        )
        return line + self._separation(layer) + self._observer_caveat(layer)

    def _separation(self, layer: str) -> str:
        """Whether any layer tells flipped from control images apart, said plainly: int8
        error usually grows alike on every image, and the flips are the images whose margin
        it happened to cross, which no layer can single out."""
        if self.n_control == 0:
            return " (no control image to compare with)"
        if self.table.at[layer, "ratio"] >= SEPARATES:
            return ""
        contrast = self.contrast_layer(SEPARATES)
        if contrast is None:
            return (
                f"; no layer separates flipped from control images (nowhere {SEPARATES:g} x): "
                "they part where every image drifts"
            )
        return (
            f"; flipped images first drift {SEPARATES:g} x more than the controls at layer "
            f"{contrast} ({self._where(contrast)})"
        )

    @property
    def first_difference(self) -> str | None:
        """The first layer where any flipped image's tensors differ at all (bit-exact
        agreement before it): for two runtimes of one model, where they first compute
        different numbers."""
        hits = self.table.index[self.table["differs_flipped"] > 0]
        return None if hits.empty else str(hits[0])

    def observer_lines(self) -> list[str]:
        """Per side, the observer check as a reader needs it: which compared tensors were
        read from a deployment whose final outputs stayed within `observer_tol` (a probe
        compiling one model per tensor can keep most of them clean while a few tensors, whose
        exposure stops a fusion, move the outputs)."""
        lines = []
        for side, check in zip("ab", self.observer, strict=True):
            moved = self.table[f"observer_{side}"] > self.observer_tol
            line = check.describe()
            if moved.any() and not moved.all():
                line += (
                    f"; {int((~moved).sum())} of {len(moved)} compared tensors were read with "
                    f"the outputs within {self.observer_tol:g} of the plain run"
                )
            lines.append(line)
        return lines

    def contrast_layer(self, min_ratio: float = 1.2) -> str | None:
        """The first layer where flipped images' median error is `min_ratio` x the control's:
        where the flipped images start to diverge more than the others, if anywhere."""
        hits = self.table.index[self.table["ratio"] >= min_ratio]
        return None if hits.empty else str(hits[0])

    def _observer_caveat(self, layer: str) -> str:
        t = self.table
        moved = t[["observer_a", "observer_b"]].max(axis=1)
        if moved[layer] <= self.observer_tol:
            return ""
        pos = t.index.get_loc(layer)
        clean = [i for i in range(len(t)) if moved.iloc[i] <= self.observer_tol]
        before = [i for i in clean if i < pos]
        after = [i for i in clean if i > pos]
        sides = []
        for i in before[-1:] + after[:1]:
            sides.append(f"depth {i + 1} rel L2 {t['rel_l2_flipped_med'].iloc[i]:.3g}")
        between = f"; unmoved neighbours: {', '.join(sides)}" if sides else ""
        return f" (read with the outputs moved by {moved[layer]:.3g}{between})"

    def _where(self, layer: str) -> str:
        row = self.table.loc[layer]
        return f"{row['step']}, depth {row['depth']} of {len(self.table)}"


def _times(ratio: float) -> str:
    return "inf x" if np.isinf(ratio) else f"{ratio:.1f} x"


def compared_layers(graph: LayerGraph, a: Probe, b: Probe) -> list[str]:
    """The reference graph's layers that both probes expose, in graph order."""
    ea, eb = set(a.exposed), set(b.exposed)
    return [t for t in graph.layers if t in ea and t in eb]


def unmatched(graph: LayerGraph, side: Probe, other: Probe) -> dict[str, str]:
    """Per side: what is not compared and why (never silently dropped)."""
    mine, theirs = set(side.exposed), set(other.exposed)
    out = {}
    for t in graph.layers:
        if t not in mine:
            out[t] = _reason(side, t)
        elif t not in theirs:
            out[t] = f"only this side exposes it ({other.runtime}: {_reason(other, t)})"
    for t in side.exposed:
        if t not in graph.producer and t not in graph.inputs:
            out[t] = "not a tensor of the reference graph"
    return out


def _reason(probe: Probe, name: str) -> str:
    if name in probe.unexposed:
        return probe.unexposed[name]
    why = getattr(probe, "why", None)  # a probe planned for other names can still say
    return why(name) if why is not None else "not requested from this runtime"


class _Tally:
    """Observer check of one probe, accumulated over batches and observation groups."""

    def __init__(self, runtime: str) -> None:
        self.runtime, self.changed, self.n = runtime, 0, 0
        self.per_group: dict[str, float] = {}

    def add(self, plain: Mapping[str, np.ndarray], groups: Mapping[str, Mapping]) -> None:
        first = next(iter(plain))
        p = np.asarray(plain[first])
        self.n += len(p)
        changed = np.zeros(len(p), bool)
        for group, observed in groups.items():
            worst = max(
                float(np.abs(np.asarray(observed[k], np.float64) - v).max(initial=0.0))
                for k, v in plain.items()
            )
            self.per_group[group] = max(self.per_group.get(group, 0.0), worst)
            if p.ndim == 2:  # classification logits: an image whose top-1 moved in any group
                changed |= p.argmax(1) != np.asarray(observed[first]).argmax(1)
        self.changed += int(changed.sum())

    def result(self) -> ObserverCheck:
        worst = max(self.per_group.values(), default=0.0)
        return ObserverCheck(self.runtime, worst, self.changed, self.n, dict(self.per_group))


def _top1(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    first = np.asarray(next(iter(outputs.values())))
    return first.argmax(1) if first.ndim == 2 else np.full(len(first), -1)


def _pair(images) -> tuple[np.ndarray, np.ndarray]:
    """(A's host tensors, B's): one array for both, or a pair when A and B preprocess the
    same images differently (the graph input is then a compared layer like any other)."""
    if isinstance(images, tuple | list):
        xa, xb = images
        if len(xa) != len(xb):
            raise ValueError(f"A has {len(xa)} images, B {len(xb)}: they must be the same")
        return np.asarray(xa), np.asarray(xb)
    return np.asarray(images), np.asarray(images)


def _run_set(a: Probe, b: Probe, images, layers, batch_size: int, tallies):
    """Per-image metrics (metric -> (n, L)) and plain top-1 of A and B on one image set."""
    xa_all, xb_all = _pair(images)
    cols: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    top1: list[tuple[np.ndarray, np.ndarray]] = []
    for start in range(0, len(xa_all), batch_size):
        tensors, tops = [], []
        for probe, tally, x_all in zip((a, b), tallies, (xa_all, xb_all), strict=True):
            x = np.ascontiguousarray(x_all[start : start + batch_size], dtype=np.float32)
            seen, groups = probe.observe(x)
            plain = probe.plain(x)
            tally.add(plain, groups)
            tensors.append(seen)
            tops.append(_top1(plain))
        top1.append((tops[0], tops[1]))
        per_layer = [per_image(tensors[0][t], tensors[1][t]) for t in layers]
        for m in METRICS:
            cols[m].append(np.stack([v[m] for v in per_layer], axis=1))
    width = len(layers)
    values = {m: np.concatenate(v) if v else np.zeros((0, width)) for m, v in cols.items()}
    ta = np.concatenate([t[0] for t in top1]) if top1 else np.zeros(0, int)
    tb = np.concatenate([t[1] for t in top1]) if top1 else np.zeros(0, int)
    return values, ta, tb


def _first_above(rel: np.ndarray, threshold: float) -> np.ndarray:
    """Per image, the index of the first layer whose error exceeds threshold (-1: none)."""
    above = rel > threshold
    return np.where(above.any(axis=1), above.argmax(axis=1), -1)


def _added(rel: np.ndarray, parents: list[list[int]]) -> np.ndarray:
    """Per image and layer: its error minus the largest error among the layers it reads."""
    before = np.zeros_like(rel)
    for j, ps in enumerate(parents):
        if ps:
            before[:, j] = rel[:, ps].max(axis=1)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(rel - before, nan=0.0, posinf=np.inf)


def _histogram(first: np.ndarray, layers: list[str]) -> pd.Series:
    counts = pd.Series(0, index=[*layers, NONE], dtype=int)
    for j in first:
        counts.iloc[j if j >= 0 else len(layers)] += 1
    return counts


def _table(graph, layers, steps, values, added, firsts, observers) -> pd.DataFrame:
    rows = []
    for j, t in enumerate(layers):
        row = {
            "layer": t,
            "op": graph.op(t),
            "step": steps[j].label,
            "depth": j + 1,
            "nodes": ", ".join(n.name for n in steps[j].nodes),
        }
        for s in SETS:
            for m in METRICS:
                row[f"{m}_{s}_med"], row[f"{m}_{s}_p90"] = summary(values[s][m][:, j], m)
            differs = values[s]["max_abs"][:, j] > 0
            row[f"differs_{s}"] = float(differs.mean()) if differs.size else float("nan")
        for side, (probe, check) in zip("ab", observers, strict=True):
            row[f"observer_{side}"] = check.per_group.get(probe.group_of(t), 0.0)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("layer")
    flip, ctrl = table["rel_l2_flipped_med"], table["rel_l2_control_med"]
    with np.errstate(divide="ignore", invalid="ignore"):
        table["ratio"] = np.where(ctrl > 0, flip / ctrl, np.where(flip > 0, np.inf, 1.0))
    for s in SETS:
        table[f"added_{s}_med"] = np.median(added[s], axis=0) if len(added[s]) else np.nan
        table[f"first_{s}"] = _histogram(firsts[s], layers).iloc[:-1].to_numpy()
    return table


def layer_divergence(
    a: Probe,
    b: Probe,
    flipped: np.ndarray | tuple[np.ndarray, np.ndarray],
    control: np.ndarray | tuple[np.ndarray, np.ndarray],
    graph: LayerGraph,
    *,
    threshold: float = 0.05,
    batch_size: int = 64,
    top_k: int = 5,
    labels: Sequence[str] | None = None,
    observer_tol: float = 1e-4,
) -> LayerDivergence:
    """Compare A and B layer by layer on flipped and control images (host tensors, NCHW;
    an (A, B) pair of arrays when the two deployments preprocess differently).

    `graph` names and orders the layers (LayerGraph.from_onnx of the float export, or of the
    QDQ model when both sides run it); `threshold` is the relative L2 error above which a
    layer counts as "parted" for the first-divergence histogram (0.05, i.e. an SQNR of
    26 dB: int8 ResNet-20 layers sit at 0.005-0.08 against fp32).
    """
    layers = compared_layers(graph, a, b)
    if not layers:
        raise ValueError(f"{a.runtime} and {b.runtime} expose no common layer of the graph")
    la, lb = labels or (a.runtime, b.runtime)
    tallies = (_Tally(la), _Tally(lb))
    values, top1 = {}, {}
    for s, images in zip(SETS, (flipped, control), strict=True):
        values[s], ta, tb = _run_set(a, b, images, layers, batch_size, tallies)
        top1[s] = (ta, tb)
    steps = [graph.step(t, layers) for t in layers]
    index = {t: j for j, t in enumerate(layers)}
    parents = [[index[p] for p in st.parents] for st in steps]
    added = {s: _added(values[s]["rel_l2"], parents) for s in SETS}
    firsts = {s: _first_above(values[s]["rel_l2"], threshold) for s in SETS}
    checks = (tallies[0].result(), tallies[1].result())
    table = _table(
        graph, layers, steps, values, added, firsts, list(zip((a, b), checks, strict=True))
    )
    # rank on flipped images; with none (A and B agree everywhere), on the controls
    by = "added_flipped_med" if len(_pair(flipped)[0]) else "added_control_med"
    ranked = table[by].sort_values(ascending=False, kind="stable")
    return LayerDivergence(
        a=la,
        b=lb,
        table=table,
        first_divergence=_histogram(firsts["flipped"], layers),
        first_divergence_control=_histogram(firsts["control"], layers),
        top_added=tuple((str(t), float(v)) for t, v in ranked.head(top_k).items()),
        observer=checks,
        unmatched_a=unmatched(graph, a, b),
        unmatched_b=unmatched(graph, b, a),
        threshold=threshold,
        n_flipped=len(_pair(flipped)[0]),
        n_control=len(_pair(control)[0]),
        images=_images(layers, firsts, top1),
        observer_tol=observer_tol,
    )


def _images(layers, firsts, top1) -> pd.DataFrame:
    frames = []
    for s in SETS:
        first = firsts[s]
        frames.append(
            pd.DataFrame(
                {
                    "set": s,
                    "position": np.arange(len(first)),
                    "first_layer": [layers[j] if j >= 0 else NONE for j in first],
                    "top1_a": top1[s][0],
                    "top1_b": top1[s][1],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def observer_check(
    probe: Probe, images: np.ndarray, batch_size: int = 64, label: str | None = None
) -> ObserverCheck:
    """The observer check alone: do the extra outputs move this probe's final outputs?

    Cheap enough to run before a comparison, e.g. to fall back to one compiled model per
    tensor (mode "each") when exposing every tensor at once changes the deployment.
    """
    tally = _Tally(label or probe.runtime)
    for start in range(0, len(images), batch_size):
        x = np.ascontiguousarray(images[start : start + batch_size], dtype=np.float32)
        _, groups = probe.observe(x)
        tally.add(probe.plain(x), groups)
    return tally.result()
