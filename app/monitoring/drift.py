"""Drift of what was scored against a bundle's training reference: PSI per feature and of
the score histogram, per (family, version, alias). Pure: counts and references in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from app.bundles.reference import Reference, bin_labels
from app.monitoring.aggregate import MISSING, ROWS_SERIES, SCORE_SERIES, bin_names
from app.monitoring.stats import psi

# (family, version, alias, series, bin) -> customers, summed over days and replicas
Counts = Mapping[tuple[str, int, str, str, str], int]


def drift_report(counts: Counts, references: Mapping[tuple[str, int], Reference | None],
                 *, psi_alert: float) -> list[dict[str, Any]]:
    """One entry per (family, version, alias) that scored anything: rows, PSI per feature
    (largest first), score PSI, and the features whose PSI exceeds `psi_alert`."""
    grouped: dict[tuple[str, int, str], dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(dict))
    for (family, version, alias, series_name, name), n in counts.items():
        grouped[(family, version, alias)][series_name][name] = n
    out = []
    for (family, version, alias), by_series in sorted(grouped.items()):
        series: dict[str, dict[str, int]] = by_series
        rows = sum(series.get(ROWS_SERIES, {}).values())
        ref = references.get((family, version))
        entry: dict[str, Any] = {"family": family, "version": version, "alias": alias,
                                 "rows": rows, "reference": ref is not None}
        if ref is None:
            entry.update(features=[], score=None, drifted=[],
                         note="no reference: the bundle was made before training "
                              "references were recorded")
            out.append(entry)
            continue
        features: list[dict[str, Any]] = []
        for feature, hist in ref.features.items():
            got = series.get(f"feature:{feature}")
            if not got:
                continue
            names = bin_names(hist)
            labels = [*(list(hist.categories) if hist.categories is not None
                        else bin_labels(hist.edges or ())), MISSING]
            expected = hist.expected()
            actual = [got.get(n, 0) for n in names]
            value = psi(expected, actual)
            features.append({"feature": feature, "psi": value, "bins": labels,
                             "expected": expected, "actual": actual})
        features.sort(key=lambda f: -(f["psi"] or 0.0))
        score: dict[str, Any] | None = None
        if ref.score is not None and SCORE_SERIES in series:
            got = series[SCORE_SERIES]
            actual = [got.get(str(i), 0) for i in range(len(ref.score.counts))]
            score = {"psi": psi(list(ref.score.counts), actual),
                     "bins": bin_labels(ref.score.edges), "expected": list(ref.score.counts),
                     "actual": actual}
        entry.update(features=features, score=score,
                     drifted=[f["feature"] for f in features
                              if f["psi"] is not None and f["psi"] > psi_alert])
        out.append(entry)
    return out
