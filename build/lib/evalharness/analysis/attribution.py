"""Exact Shapley attribution of a metric gap between two configs to the factors they differ in.

For configs A and B differing in the k factors D, v(S) is the metric of the config that takes
B's value for the factors in S and A's otherwise. Factor i gets

    phi_i = sum over S in D without i of |S|! (k - |S| - 1)! / k! * (v(S + i) - v(S))

and the phi sum to v(D) - v({}) = metric(B) - metric(A) exactly. Nothing here assumes the
metric is a mean of per-image bits: v(S) is a vector [point estimate, value on resample 1,
..., value on resample b], every coalition evaluated on the *same* index matrix, and phi is
computed element-wise. The point phi are exact; the resampled phi give paired percentile
intervals (for accuracy this equals bootstrapping the per-image Shapley terms, since phi is
linear in v). This works for mAP and hmean as for top-1.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from math import factorial

import numpy as np

from evalharness.stats.paired import percentile_ci


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
    """phi_i as a vector (per sample, or per resample) for each factor; value(S) a vector."""
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
    gap: float  # metric(B) - metric(A)
    terms: dict[str, tuple[float, float, float]]  # factor -> (phi, lo, hi)
    residual: float  # gap - sum(phi): zero up to float rounding
    unit: str = "points"
    joint: dict[str, str] | None = None  # factors attributed together, and why

    def ranked(self) -> list[tuple[str, tuple[float, float, float]]]:
        return sorted(self.terms.items(), key=lambda kv: -abs(kv[1][0]))

    def verdict(self, a_label: str = "A", b_label: str = "B", fmt: str = "{:+.1f}") -> str:
        parts = [
            f"{f} explains {fmt.format(p)} [{fmt.format(lo)}, {fmt.format(hi)}]"
            for f, (p, lo, hi) in self.ranked()
        ]
        gap = fmt.format(self.gap)
        gap = f"{gap}-point" if self.unit == "points" else f"{gap} {self.unit}"
        text = (
            f"Of the {gap} gap from {a_label} to {b_label}, "
            + ", ".join(parts)
            + f" ({self.unit}, paired bootstrap 95% CI)."
        )
        if self.joint:
            text += " " + " ".join(f"{k}: {why}" for k, why in self.joint.items())
        return text


def attribute_values(
    a: dict[str, str],
    b: dict[str, str],
    values: Callable[[dict[str, str]], np.ndarray],
    unit: str = "points",
    groups: dict[str, list[str]] | None = None,
) -> Attribution:
    """Shapley split of metric(B) - metric(A); `values(config)` gives [point, resamples...].

    `groups` (name -> factors) attributes several factors as one player, e.g. when a
    coalition mixing them cannot run (int8_nncf exists only on OpenVINO)."""
    factors = differing_factors(a, b)
    players: dict[str, list[str]] = {}
    grouped = {f for fs in (groups or {}).values() for f in fs}
    for name, fs in (groups or {}).items():
        if any(f in factors for f in fs):
            players[name] = [f for f in fs if f in factors]
    for f in factors:
        if f not in grouped:
            players[f] = [f]

    def value(s: frozenset) -> np.ndarray:
        chosen = {f for p in s for f in players[p]}
        return values(coalition_config(a, b, chosen))

    phi = shapley_per_sample(list(players), value)
    va, vb = values(a), values(b)
    gap = float(vb[0] - va[0])
    terms = {}
    for p, vec in phi.items():
        lo, hi = percentile_ci(vec[1:])
        terms[p] = (float(vec[0]), lo, hi)
    residual = gap - sum(t[0] for t in terms.values())
    return Attribution(gap, terms, float(residual), unit)


def attribute(
    a: dict[str, str],
    b: dict[str, str],
    correctness: Callable[[dict[str, str]], np.ndarray],
    idx: np.ndarray,
) -> Attribution:
    """Shapley split of acc(B) - acc(A) in points, from per-sample 0/1 correctness vectors."""

    def values(config: dict[str, str]) -> np.ndarray:
        c = np.asarray(correctness(config), dtype=float)
        return np.concatenate([[c.mean()], c[idx].mean(axis=1)]) * 100

    return attribute_values(a, b, values)
