"""The statistics monitoring reports: PSI, Wilson intervals, Newcombe's difference interval,
expected calibration error. Pure functions over counts."""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054
# Empty bins get this share instead of 0, so log(actual / expected) stays finite (the usual
# convention; it caps one empty bin's contribution at about 0.0007 + share * log(share/1e-4)).
PSI_EPSILON = 1e-4


def shares(counts: Sequence[float]) -> list[float]:
    """Counts as shares of their total, each at least PSI_EPSILON (all 0 when empty)."""
    total = float(sum(counts))
    if total <= 0:
        return [0.0] * len(counts)
    return [max(c / total, PSI_EPSILON) for c in counts]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float | None:
    """Population stability index of `actual` counts against `expected` (same bins);
    None when either side has no counts."""
    if len(expected) != len(actual):
        raise ValueError("PSI needs the same bins on both sides")
    if sum(expected) <= 0 or sum(actual) <= 0:
        return None
    e, a = shares(expected), shares(actual)
    return sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True))


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion; None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(s1: int, n1: int, s2: int, n2: int,
             z: float = Z95) -> tuple[float, tuple[float, float]] | None:
    """p1 - p2 with Newcombe's hybrid score interval (method 10); None if a side is empty."""
    w1, w2 = wilson(s1, n1, z), wilson(s2, n2, z)
    if w1 is None or w2 is None:
        return None
    p1, p2 = s1 / n1, s2 / n2
    (l1, u1), (l2, u2) = w1, w2
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, (lower, upper)


def ece(bins: Sequence[tuple[int, float, int]]) -> float | None:
    """Expected calibration error from (n, sum of predicted, observed positives) per bin."""
    total = sum(n for n, _, _ in bins)
    if total <= 0:
        return None
    return sum(abs(sp - pos) for n, sp, pos in bins if n) / total
