"""Churn reasons: LightGBM SHAP contributions mapped to reason codes an RM can read."""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from app.bundles.manifest import ReasonCode
from app.scoring.families import ChurnFamily

TOP_REASONS = 3


def contributions(churn: ChurnFamily, x: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Exact SHAP contributions (n, features + 1) in raw-score units; costly, so only on request."""
    return np.asarray(churn.model.booster.predict(x[:, columns], pred_contrib=True))


def format_value(value: Any, fmt: str) -> str:
    """A feature value as a reason text shows it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if fmt == "percent":
        return f"{abs(float(value)) * 100:.0f}%"
    if fmt == "money":
        return f"CNY {float(value):,.0f}"
    if fmt == "integer":
        return f"{int(value)}"
    if fmt == "number":
        return f"{float(value):.3g}"
    return str(value)


def _generic(feature: str) -> ReasonCode:
    readable = feature.replace("_", " ")
    return ReasonCode(code=feature, up=f"{readable} ({{value}}) raises risk",
                      down=f"{readable} ({{value}}) lowers risk", format="text")


def top_order(contrib: np.ndarray, k: int = TOP_REASONS
              ) -> tuple[list[list[int]], list[list[float]]]:
    """Per row of contributions (bias last): the k features by decreasing |value|, ties by
    position (as the stable sort gives them), and their values."""
    values = contrib.tolist()
    if len(values) < 16:  # a few rows: the same order in Python, without numpy's overhead
        last = contrib.shape[1] - 1
        order = [heapq.nlargest(k, range(last), key=[abs(c) for c in v].__getitem__)
                 for v in values]
    else:
        order = np.argsort(-np.abs(contrib[:, :-1]), axis=1, kind="stable")[:, :k].tolist()
    return order, [[v[j] for j in o] for o, v in zip(order, values, strict=True)]


def top_reasons(
    contrib_row: np.ndarray,
    feature_names: tuple[str, ...],
    features: Mapping[str, Any],
    codes: Mapping[str, ReasonCode],
    k: int = TOP_REASONS,
    top: tuple[list[int], list[float]] | None = None,
) -> list[dict[str, Any]]:
    """The k features that moved this customer's churn score most, largest first (`top`:
    this row of `top_order` over many rows, when the caller has it)."""
    if top is None:
        orders, tops = top_order(contrib_row[None, :], k)
        top = orders[0], tops[0]
    reasons = []
    for j, c in zip(*top, strict=True):
        if c == 0.0:
            break
        name = feature_names[j]
        code = codes.get(name) or _generic(name)
        template = code.up if c > 0 else code.down
        reasons.append({
            "code": code.code,
            "feature": name,
            "direction": "raises_risk" if c > 0 else "lowers_risk",
            "contribution": round(c, 6),
            "text": template.format(value=format_value(features.get(name), code.format)),
        })
    return reasons
