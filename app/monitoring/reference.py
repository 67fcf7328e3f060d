"""The training reference a model bundle records: per-feature histograms and the score's.

Numeric features get up to REFERENCE_BINS quantile bins (interior edges; a value v falls in
bin searchsorted(edges, v, side="right")), categories and booleans are counted as they are,
missing values apart. Serving counts what it scores against the same edges
(app/monitoring/aggregate.py), so PSI compares like with like. Pure: numpy in, dicts out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.bundles.reference import FeatureHistogram, Reference, ScoreHistogram
from app.features.spec import FeatureSpec

REFERENCE_BINS = 10
# The score (a probability) is histogrammed on fixed edges, so versions compare directly.
SCORE_EDGES: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 10))
BOOLEAN_CATEGORIES = ("false", "true")


def quantile_edges(values: np.ndarray, bins: int = REFERENCE_BINS) -> tuple[float, ...]:
    """Distinct interior quantile edges of the finite `values` (at most bins - 1)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return ()
    qs = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1], method="lower")
    edges = sorted({float(q) for q in qs})
    # A value equal to the minimum would open an empty first bin; drop that edge.
    return tuple(e for e in edges if e > float(finite.min()))


def numeric_counts(values: np.ndarray, edges: Sequence[float]) -> tuple[list[int], int]:
    """(counts per bin, missing) of `values` against `edges`."""
    nan = np.isnan(values)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values[~nan], side="right")
    return np.bincount(idx, minlength=len(edges) + 1).tolist(), int(nan.sum())


def feature_reference(x: np.ndarray, specs: Sequence[FeatureSpec]) -> dict[str, FeatureHistogram]:
    """Histograms of the columns of `x` (laid out like `specs`, as training encodes them)."""
    out: dict[str, FeatureHistogram] = {}
    for i, spec in enumerate(specs):
        col = np.asarray(x[:, i], dtype=np.float64)
        nan = np.isnan(col)
        if spec.kind in ("category", "boolean"):
            names = spec.categories if spec.kind == "category" else BOOLEAN_CATEGORIES
            counts = np.bincount(col[~nan].astype(np.int64), minlength=len(names))
            out[spec.name] = FeatureHistogram(
                categories={n: int(c) for n, c in zip(names, counts.tolist(), strict=False)},
                missing=int(nan.sum()))
        else:
            edges = quantile_edges(col)
            counts_list, missing = numeric_counts(col, edges)
            out[spec.name] = FeatureHistogram(edges=edges, counts=tuple(counts_list),
                                              missing=missing)
    return out


def score_reference(scores: np.ndarray) -> ScoreHistogram:
    """The score histogram on SCORE_EDGES (NaN scores are not counted)."""
    counts, _ = numeric_counts(np.asarray(scores, dtype=np.float64), SCORE_EDGES)
    return ScoreHistogram(edges=SCORE_EDGES, counts=tuple(counts))


def build_reference(x: np.ndarray, specs: Sequence[FeatureSpec],
                    scores: np.ndarray | None) -> Reference:
    """The reference of training rows `x` and the model's scores on them (None: no score)."""
    return Reference(rows=int(x.shape[0]), features=feature_reference(x, specs),
                     score=score_reference(scores) if scores is not None else None)
