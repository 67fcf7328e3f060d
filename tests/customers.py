"""Realistic customers for API tests, drawn from the synthetic book."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from app.features.contract import DEFAULT_FEATURES
from app.training.synth import generate_book


def _plain(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if kind == "boolean":
        return bool(value)
    if kind == "integer":
        return int(value)
    if kind == "category":
        return str(value)
    return float(value)


def book_customers(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """n customers as (customer_id, features) request items; missing values left out."""
    book = generate_book(n, seed)
    items = []
    for i in range(n):
        features = {}
        for spec in DEFAULT_FEATURES:
            value = _plain(book[spec.name][i], spec.kind)
            if value is not None:
                features[spec.name] = value
        items.append({"customer_id": str(book["customer_id"][i]), "features": features})
    return items
