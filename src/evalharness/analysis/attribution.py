"""Exact Shapley attribution of an accuracy gap between two configs to the factors they differ in.

For configs A and B differing in the k factors D, v(S) is the accuracy of the config that takes
B's value for the factors in S and A's otherwise. Factor i gets

    phi_i = sum over S in D without i of |S|! (k - |S| - 1)! / k! * (v(S + i) - v(S))

and the phi sum to v(D) - v({}) = acc(B) - acc(A) exactly. Accuracy is a mean over images,
and phi is linear in v, so phi is computed per image: its mean is the attribution and a
bootstrap over images of the same per-image terms gives paired intervals.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from math import factorial

import numpy as np

from evalharness.analysis.paired import bootstrap_ci


def differing_factors(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return [f for f in a if a[f] != b.get(f)]


def coalition_config(a: dict[str, str], b: dict[str, str], subset) -> dict[str, str]:
    """A with B's value for every factor in `subset`."""
    return {f: (b[f] if f in subset else v) for f, v in a.items()}


def all_coalition_configs(a: dict[str, str], b: dict[str, str]) -> list[dict[str, str]]:
    factors = differing_factors(a, b)
    return [
        coalition_config(a, b, set(s))
        for r in range(len(factors) + 1)
        for s in itertools.combinations(factors, r)
    ]


def shapley_per_sample(factors: list[str], value: Callable[[frozenset], np.ndarray]) -> dict:
    """phi_i as a per-sample vector for each factor; value(S) is per-sample correctness."""
    k = len(factors)
    cache: dict[frozenset, np.ndarray] = {}

    def v(s: frozenset) -> np.ndarray:
        if s not in cache:
            cache[s] = np.asarray(value(s), dtype=float)
        return cache[s]

    phi = {}
    for i in factors:
        others = [f for f in factors if f != i]
        total = 0.0
        for r in range(k):
            weight = factorial(r) * factorial(k - r - 1) / factorial(k)
            for s in itertools.combinations(others, r):
                s = frozenset(s)
                total = total + weight * (v(s | {i}) - v(s))
        phi[i] = total
    return phi


@dataclass
class Attribution:
    gap: float  # acc(B) - acc(A), points
    terms: dict[str, tuple[float, float, float]]  # factor -> (phi, lo, hi), points
    residual: float  # gap - sum(phi): zero up to float rounding

    def ranked(self) -> list[tuple[str, tuple[float, float, float]]]:
        return sorted(self.terms.items(), key=lambda kv: -abs(kv[1][0]))

    def verdict(self, a_label: str = "A", b_label: str = "B") -> str:
        parts = [
            f"{f} explains {p:+.1f} [{lo:+.1f}, {hi:+.1f}]" for f, (p, lo, hi) in self.ranked()
        ]
        return (
            f"Of the {self.gap:+.1f}-point gap from {a_label} to {b_label}, "
            + ", ".join(parts)
            + " (points, paired bootstrap 95% CI)."
        )


def attribute(
    a: dict[str, str],
    b: dict[str, str],
    correctness: Callable[[dict[str, str]], np.ndarray],
    idx: np.ndarray,
) -> Attribution:
    """Shapley split of acc(B) - acc(A); `correctness(config)` gives per-sample 0/1 vectors."""
    factors = differing_factors(a, b)

    def value(s: frozenset) -> np.ndarray:
        return correctness(coalition_config(a, b, s))

    per_sample = shapley_per_sample(factors, value)
    gap = (np.mean(correctness(b)) - np.mean(correctness(a))) * 100
    terms = {}
    for f, vec in per_sample.items():
        lo, hi = bootstrap_ci(vec, idx)
        terms[f] = (float(vec.mean() * 100), lo * 100, hi * 100)
    residual = gap - sum(t[0] for t in terms.values())
    return Attribution(float(gap), terms, float(residual))
