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

from PIL import Image

from evalharness.data.dataset import Sample
from evalharness.preprocess.errors import StageError
from evalharness.preprocess.pipeline import Stage


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
        for k, stages in enumerate(self.pipelines):
            common = 0
            while common < min(len(path), len(stages)) and path[common][0] == stages[common]:
                common += 1
            del path[common:]  # leave the branch: its outputs are freed here
            x: Any = path[-1][1] if path else self._start(sample)
            for stage in stages[common:]:
                dt = 0.0
                if not isinstance(x, Failure):
                    t0 = time.perf_counter()
                    x = self._run(stage, x)
                    dt = time.perf_counter() - t0
                    counts.calls[stage.kind] += 1
                    counts.seconds[stage.kind] += dt
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
