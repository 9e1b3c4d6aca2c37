"""Preprocessing as a depth-first walk of the trie of stage prefixes, one sample at a time.

The host pipelines of a sweep (unique stage tuples) sorted by their stages form a trie:
pipelines that share a decode are neighbours, and among them those that share a resize.
Walking it depth first for one sample computes every unique prefix once and keeps alive
only the path being walked: a decoded image is dropped as soon as every pipeline below it
is done, so memory does not grow with the chunk size or the number of configs, and an
88-megapixel image exists once per worker, not once per sample of the chunk.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xxhash
from PIL import Image

from evalharness.data.dataset import Sample
from evalharness.preprocess.errors import StageError
from evalharness.preprocess.geometry import Frame
from evalharness.preprocess.pipeline import Stage, pixels


@dataclass(frozen=True)
class Failure:
    stage: str
    reason: str


@dataclass
class Pipeline:
    """A unique host stage tuple of the sweep and the configs (specs) that feed on it."""

    stages: tuple[Stage, ...]
    specs: list = field(default_factory=list)


def pipelines_of(specs) -> list[Pipeline]:
    """The sweep's unique pipelines in trie order (shared prefixes are neighbours)."""
    by_stages: dict[tuple[Stage, ...], Pipeline] = {}
    for spec in specs:
        by_stages.setdefault(spec.stages, Pipeline(spec.stages)).specs.append(spec)
    return sorted(by_stages.values(), key=lambda p: tuple(repr(s) for s in p.stages))


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape, dtype and values (np.array_equal: 58 us on a 570x400 image, where a
    memoryview comparison takes 1.3 ms holding the GIL and tobytes() 0.7 ms)."""
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


class _SameInput:
    """Per sample: (stage, input bytes) -> output. Two decoders that give the same pixels
    (Pillow, OpenCV and torchvision.io decode most JPEGs alike) then share every resize,
    colour and normalize below them, not only the inference. Keyed by xxh3-128 of the input
    with its shape, dtype and geometry, confirmed by a byte comparison; inputs over
    MAX_BYTES (an 88-megapixel decode) are not kept for it, so memory stays per branch."""

    MAX_BYTES = 16_000_000

    def __init__(self) -> None:
        self.memo: dict[tuple, tuple[Any, Any, float]] = {}

    @staticmethod
    def _key(stage: Stage, x: Any) -> tuple | None:
        arr = x.pixels if isinstance(x, Frame) else x
        if not isinstance(arr, np.ndarray) or arr.nbytes > _SameInput.MAX_BYTES:
            return None
        geometry = x.geometry if isinstance(x, Frame) else None
        digest = xxhash.xxh3_128_digest(np.ascontiguousarray(arr))
        return (stage, arr.shape, arr.dtype.str, digest, geometry)

    def get(self, stage: Stage, x: Any) -> tuple[Any, float] | None:
        key = self._key(stage, x)
        hit = self.memo.get(key) if key is not None else None
        # the same object (an output this walk already reused) needs no byte comparison
        if hit is None or not (hit[0] is x or same_bytes(pixels(hit[0]), pixels(x))):
            return None
        return hit[1], hit[2]

    def put(self, stage: Stage, x: Any, y: Any, seconds: float) -> None:
        key = self._key(stage, x)
        if key is not None:
            self.memo[key] = (x, y, seconds)


class _Counts:
    """Per-walk counters (merged by the caller; no locks on the hot path)."""

    def __init__(self) -> None:
        from collections import Counter, defaultdict

        self.calls: Counter = Counter()
        self.seconds: defaultdict = defaultdict(float)


class ByteBudget:
    """A counting semaphore in bytes: walks of huge images wait for each other, small ones
    run side by side. A request larger than the whole budget waits until it runs alone."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.used = capacity, 0
        self.cond = threading.Condition()

    @contextmanager
    def hold(self, n: int):
        n = min(n, self.capacity)
        with self.cond:
            self.cond.wait_for(lambda: self.used + n <= self.capacity)
            self.used += n
        try:
            yield
        finally:
            with self.cond:
                self.used -= n
                self.cond.notify_all()


def decode_bytes(sample: Sample) -> int:
    """What decoding this file may hold at once: width x height x 3 bytes, three times over
    (the library's image, its RGB conversion, the array), from the header alone."""
    try:
        with Image.open(sample.path) as img:
            w, h = img.size
    except Exception:  # unreadable: the decoder will say why; it costs nothing to hold
        return 0
    return w * h * 3 * 3


class Walker:
    """Walks the trie of `pipelines` (stage tuples in trie order) for one sample."""

    def __init__(self, pipelines: list[tuple[Stage, ...]], budget: ByteBudget | None = None):
        self.pipelines = pipelines
        self.budget = budget

    def walk(self, sample: Sample) -> tuple[list[Any], _Counts]:
        if self.budget is None:
            return self._walk(sample)
        with self.budget.hold(decode_bytes(sample)):
            return self._walk(sample)

    def _walk(self, sample: Sample) -> tuple[list[Any], _Counts]:
        counts = _Counts()
        path: list[tuple[Stage, Any, float]] = []  # the current branch: stage, output, seconds
        outs = []
        seen = _SameInput()
        for k, stages in enumerate(self.pipelines):
            common = 0
            while common < min(len(path), len(stages)) and path[common][0] == stages[common]:
                common += 1
            del path[common:]  # leave the branch: its outputs are freed here
            x: Any = path[-1][1] if path else self._start(sample)
            for stage in stages[common:]:
                dt = 0.0
                if not isinstance(x, Failure):
                    done = seen.get(stage, x)
                    if done is not None:  # same stage, byte-identical input: same output
                        x, dt = done
                        counts.calls[f"{stage.kind}_reused"] += 1
                    else:
                        t0 = time.perf_counter()
                        y = self._run(stage, x)
                        dt = time.perf_counter() - t0
                        counts.calls[stage.kind] += 1
                        counts.seconds[stage.kind] += dt
                        seen.put(stage, x, y, dt)
                        x = y
                path.append((stage, x, dt))
            # what this pipeline's stages cost for this sample, shared ones counted in full
            counts.seconds[f"prefix:{k}"] = sum(dt for _, _, dt in path)
            outs.append(x)
        return outs, counts

    @staticmethod
    def _start(sample: Sample) -> Any:
        return Failure(sample.problem_stage, sample.problem) if sample.problem else sample.path

    @staticmethod
    def _run(stage: Stage, x: Any) -> Any:
        try:
            return stage(x)
        except StageError as e:
            return Failure(e.stage, e.reason)
        except Exception as e:  # a library bug on one odd file must not end the sweep
            return Failure(stage.kind, f"{type(e).__name__}: {e}")
