"""A bundle's training reference (manifest.reference): per-feature and score histograms.

Computed by the trainers (app/monitoring/reference.py); serving counts what it scores against
the same edges (app/monitoring/aggregate.py). A numeric value v falls in bin
searchsorted(edges, v, side="right"); categories and booleans are counted as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureHistogram(_Strict):
    """Training counts of one feature: numeric bins (`edges`, `counts`) or `categories`."""

    edges: tuple[float, ...] | None = None
    counts: tuple[int, ...] | None = None
    categories: dict[str, int] | None = None
    missing: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _shape(self) -> FeatureHistogram:
        numeric = self.edges is not None and self.counts is not None
        if numeric == (self.categories is not None):
            raise ValueError("a feature histogram has either edges and counts, or categories")
        if numeric:
            assert self.edges is not None and self.counts is not None
            if len(self.counts) != len(self.edges) + 1:
                raise ValueError("a histogram has one count more than it has edges")
            if list(self.edges) != sorted(set(self.edges)):
                raise ValueError("histogram edges must increase strictly")
        return self

    def bins(self) -> list[str]:
        """Bin labels in count order (numeric: '<e0', '[e0,e1)', ..., '>=en'; categories)."""
        if self.categories is not None:
            return list(self.categories)
        return bin_labels(self.edges or ())

    def expected(self) -> list[int]:
        """Counts in bins() order, then the missing count."""
        counts = list(self.categories.values()) if self.categories is not None \
            else list(self.counts or ())
        return [*counts, self.missing]


class ScoreHistogram(_Strict):
    """Training counts of the family's score (churn: calibrated probability)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    @model_validator(mode="after")
    def _shape(self) -> ScoreHistogram:
        if len(self.counts) != len(self.edges) + 1:
            raise ValueError("a histogram has one count more than it has edges")
        return self


class Reference(_Strict):
    """manifest.reference: what the training rows looked like."""

    rows: int = Field(ge=0)
    features: dict[str, FeatureHistogram]
    score: ScoreHistogram | None = None


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Readable labels of the len(edges) + 1 numeric bins."""
    if not edges:
        return ["all"]
    e = [f"{v:.6g}" for v in edges]
    return [f"<{e[0]}", *(f"[{a},{b})" for a, b in pairwise(e)), f">={e[-1]}"]
