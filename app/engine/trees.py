"""One LightGBM ensemble as the engine sees it: the booster, its features, its link function."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np

from app.engine.model_text import ModelTextError, checked_features

_SIGMOID = re.compile(r"^objective=binary(?:.*?sigmoid:([0-9.eE+-]+))?", re.MULTILINE)
_OBJECTIVE = re.compile(r"^objective=(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class TreeModel:
    """One LightGBM ensemble: the booster, the features it reads in order, its link."""

    name: str
    booster: lgb.Booster
    feature_names: tuple[str, ...]
    objective: str  # "binary", "multiclass" or "regression" (L2: identity link)
    num_class: int
    sigmoid: float
    text: str = field(repr=False)

    @classmethod
    def from_text(cls, name: str, text: str,
                  declared: Collection[str] | None = None) -> TreeModel:
        """Parse a LightGBM text model (never pickle), checked by the strict reader first.

        LightGBM sees the text only once every tree passed check_model (its own parser
        aborts the process or reads out of bounds on a malformed text); with `declared`,
        every feature the model splits on must be one of those names (ModelTextError).
        """
        names = checked_features(text)
        if declared is not None and (unknown := [n for n in names if n not in declared]):
            raise ModelTextError("feature_names",
                                 "undeclared features: " + ", ".join(unknown[:5]))
        booster = lgb.Booster(model_str=text)
        obj = _OBJECTIVE.search(text)
        objective = obj.group(1) if obj else ""
        if objective.startswith("binary"):
            m = _SIGMOID.search(text)
            sigmoid = float(m.group(1)) if m and m.group(1) else 1.0
            kind, num_class = "binary", 1
        elif objective.startswith(("multiclass", "softmax")):
            kind, num_class, sigmoid = "multiclass", booster.num_model_per_iteration(), 1.0
        elif objective == "regression" and "\nobjective=regression\n" in text:
            kind, num_class, sigmoid = "regression", 1, 1.0
        else:
            raise ValueError(f"model {name}: objective {objective or '?'} is not binary, "
                             "multiclass or regression")
        return cls(
            name=name,
            booster=booster,
            feature_names=tuple(booster.feature_name()),
            objective=kind,
            num_class=num_class,
            sigmoid=sigmoid,
            text=text,
        )

    @property
    def num_trees(self) -> int:
        return self.booster.num_trees()

    def link(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores → probabilities (the prediction itself for a regression), as
        LightGBM's own predict() does it."""
        if self.objective == "regression":
            return raw
        if self.objective == "binary":
            return 1.0 / (1.0 + np.exp(-self.sigmoid * raw))
        shifted = raw - raw.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=-1, keepdims=True)

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """Raw scores with plain Booster.predict: the reference every fast path must match."""
        return np.asarray(self.booster.predict(x, raw_score=True))
