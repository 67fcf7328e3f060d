"""Evaluating every model of a scoring context on feature rows.

`BoosterEvaluator` is the reference path (plain `Booster.predict`); faster evaluators must
return the same raw scores (to 1e-9) and may replace it once they are ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.engine.trees import TreeModel
from app.features.schema import FeatureSchema


@dataclass(frozen=True, slots=True)
class RawScores:
    """Raw (untransformed) model outputs for n rows; None for a part not asked for."""

    tier: np.ndarray | None  # (n, classes); (n, 1) for a regression (wealth) tier model
    churn: np.ndarray | None  # (n,)
    products: np.ndarray | None  # (n, products) in ModelLayout.product_names order


@dataclass(frozen=True)
class ModelLayout:
    """Which models a context holds and which schema columns each one reads."""

    schema: FeatureSchema
    tier: TreeModel | None
    churn: TreeModel | None
    products: tuple[TreeModel, ...]

    @property
    def product_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.products)

    def columns(self, model: TreeModel) -> np.ndarray:
        return self.schema.columns(model.feature_names)

    def all_models(self) -> list[TreeModel]:
        return [m for m in (self.tier, self.churn, *self.products) if m is not None]


class Evaluator(Protocol):
    """Anything that turns (n, features) rows into raw scores for the parts asked for."""

    name: str

    def raw(self, x: np.ndarray, *, tier: bool, churn: bool, products: bool) -> RawScores: ...


class BoosterEvaluator:
    """Plain LightGBM `Booster.predict`, one call per model."""

    name = "lightgbm"

    def __init__(self, layout: ModelLayout) -> None:
        self.layout = layout
        self._cols = {id(m): layout.columns(m) for m in layout.all_models()}

    def _predict(self, model: TreeModel, x: np.ndarray) -> np.ndarray:
        return np.asarray(model.booster.predict(x[:, self._cols[id(model)]], raw_score=True))

    def raw(self, x: np.ndarray, *, tier: bool, churn: bool, products: bool) -> RawScores:
        lay = self.layout
        return RawScores(
            # (n, outputs) as the walker gives it, a regression's (n,) included
            tier=self._predict(lay.tier, x).reshape(len(x), -1) if tier and lay.tier else None,
            churn=self._predict(lay.churn, x) if churn and lay.churn else None,
            products=(
                np.column_stack([self._predict(m, x) for m in lay.products])
                if products and lay.products
                else None
            ),
        )
