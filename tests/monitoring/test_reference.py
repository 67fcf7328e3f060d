"""Training references: computed from the training rows, and hostile ones refused."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from app.bundles.io import Bundle
from app.bundles.manifest import Manifest
from app.bundles.reference import FeatureHistogram
from app.features.spec import FeatureSpec
from app.monitoring.reference import build_reference, quantile_edges


def test_quantile_bins_and_categories() -> None:
    values = np.arange(1000, dtype=float)
    edges = quantile_edges(values)
    assert len(edges) == 9 and list(edges) == sorted(edges)
    specs = [FeatureSpec(name="n", kind="number"),
             FeatureSpec(name="c", kind="category", categories=("a", "b")),
             FeatureSpec(name="f", kind="boolean")]
    x = np.column_stack([values, values % 2, np.where(values < 10, np.nan, 1.0)])
    ref = build_reference(x, specs, scores=np.full(1000, 0.05))
    assert ref.rows == 1000 and sum(ref.features["n"].counts or ()) == 1000
    # Deciles of 0..999 (a value equal to an edge counts in the bin above it).
    assert ref.features["n"].edges == tuple(float(99 + 100 * i) for i in range(9))
    assert ref.features["n"].counts == (99, *(100,) * 8, 101)
    assert ref.features["c"].categories == {"a": 500, "b": 500}
    assert ref.features["f"].categories == {"false": 0, "true": 990}
    assert ref.features["f"].missing == 10
    assert ref.score is not None and ref.score.counts[0] == 1000
    # A constant column has one bin; a column of NaN has none and counts only missing.
    assert quantile_edges(np.zeros(50)) == () and quantile_edges(np.full(5, np.nan)) == ()


def _with_reference(bundle: Bundle, change: Any) -> dict[str, Any]:
    fields = json.loads(bundle.manifest_bytes)
    change(fields["reference"])
    return fields


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r["features"]["age"].update(counts=[1, 2]), "one count more"),
    (lambda r: r["features"]["age"].update(edges=[3.0, 2.0, 1.0], counts=[1, 1, 1, 1]),
     "increase strictly"),
    (lambda r: r["features"]["age"].update(missing=-1), "greater than or equal"),
    (lambda r: r["features"]["age"].update(categories={"x": 1}), "either edges"),
    (lambda r: r["features"].update(nope={"edges": [], "counts": [1]}), "does not declare"),
    (lambda r: r["features"]["age"].update(edges=None, counts=None, categories={"x": 1}),
     "does not fit its kind"),
    (lambda r: r.update(rows=-5), "greater than or equal"),
    (lambda r: r["score"].update(counts=[1]), "one count more"),
    (lambda r: r.update(extra=1), "Extra inputs"),
])
def test_hostile_references_are_refused(default_bundles: dict[str, Bundle], change: Any,
                                        message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Manifest.model_validate(_with_reference(default_bundles["churn"], change))


def test_the_default_references_read_back() -> None:
    hist = FeatureHistogram(edges=(1.0, 2.0), counts=(1, 2, 3), missing=4)
    assert hist.bins() == ["<1", "[1,2)", ">=2"] and hist.expected() == [1, 2, 3, 4]
