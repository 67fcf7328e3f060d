"""Training data as model input: column-wise encoding identical to FeatureSchema, and splits.

Serving turns named values into floats with FeatureSchema.encode_into; training encodes
whole columns at once here. Both follow the same rule (category → its index in
spec.categories, boolean → 1.0/0.0, number → itself, missing → NaN), and
tests/training/test_train.py checks that the floats are identical.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.features.spec import FeatureSpec


class TrainingDataError(ValueError):
    """The training data cannot be used as given; the message says which column and why."""


def encode_column(spec: FeatureSpec, values: np.ndarray) -> np.ndarray:
    """One column of named values as the floats a model reads; raises on invalid values."""
    n = len(values)
    if spec.kind == "category":
        codes = {c: float(i) for i, c in enumerate(spec.categories)}
        out = np.fromiter(
            (math.nan if _missing(v) else codes.get(v, -1.0) for v in values),
            dtype=np.float64, count=n,
        )
        if (bad := out == -1.0).any():
            seen = sorted({str(v) for v in values[bad]})[:5]
            raise TrainingDataError(
                f"column {spec.name}: values {seen} are not among its categories "
                f"{list(spec.categories)}"
            )
    elif spec.kind == "boolean":
        if values.dtype == bool:
            out = values.astype(np.float64)
        else:
            out = np.fromiter((_bool(spec, v) for v in values), dtype=np.float64, count=n)
    else:
        try:
            out = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise TrainingDataError(f"column {spec.name}: values are not numbers") from None
        present = out[~np.isnan(out)]
        if np.isinf(present).any():
            raise TrainingDataError(f"column {spec.name}: infinite values are not allowed")
        if spec.kind == "integer" and (np.mod(present, 1.0) != 0).any():
            raise TrainingDataError(f"column {spec.name}: values must be whole numbers")
        if spec.minimum is not None and (present < spec.minimum).any():
            raise TrainingDataError(
                f"column {spec.name}: {present.min():g} is below its minimum {spec.minimum:g}")
        if spec.maximum is not None and (present > spec.maximum).any():
            raise TrainingDataError(
                f"column {spec.name}: {present.max():g} is above its maximum {spec.maximum:g}")
    if not spec.nullable and np.isnan(out).any():
        raise TrainingDataError(f"column {spec.name}: missing values in a required feature")
    return out


def encode_book(book: Mapping[str, np.ndarray], specs: Sequence[FeatureSpec]) -> np.ndarray:
    """An (n, len(specs)) float matrix, column i read from book[specs[i].name]."""
    missing = [s.name for s in specs if s.name not in book]
    if missing:
        raise TrainingDataError("the data lacks feature columns: " + ", ".join(missing[:10]))
    n = len(book[specs[0].name]) if specs else 0
    x = np.empty((n, len(specs)), dtype=np.float64)
    for i, spec in enumerate(specs):
        x[:, i] = encode_column(spec, np.asarray(book[spec.name]))
    return x


def categorical_indices(specs: Sequence[FeatureSpec]) -> list[int]:
    """Column indices LightGBM should split as categories."""
    return [i for i, s in enumerate(specs) if s.kind == "category"]


@dataclass(frozen=True)
class Split:
    """Row indices of each slice: fit the trees, calibrate (churn only), measure."""

    train: np.ndarray
    calibration: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "calibration": len(self.calibration),
                "test": len(self.test)}


def split_rows(n: int, seed: int, *, test: float = 0.2, calibration: float = 0.0) -> Split:
    """A deterministic permutation of the rows cut into train / calibration / test."""
    perm = np.random.default_rng(np.random.SeedSequence([seed, 7])).permutation(n)
    n_test = round(n * test)
    n_cal = round(n * calibration)
    return Split(
        train=np.sort(perm[n_test + n_cal:]),
        calibration=np.sort(perm[n_test:n_test + n_cal]),
        test=np.sort(perm[:n_test]),
    )


def binary_labels(values: np.ndarray, name: str) -> np.ndarray:
    """0/1 labels from booleans or numbers 0/1; anything else is an error naming the column."""
    arr = np.asarray(values)
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TrainingDataError(
                f"target {name} must be 0/1 or true/false, found text values") from None
    y = arr.astype(np.float64)
    if np.isnan(y).any():
        raise TrainingDataError(f"target {name} has missing values")
    if not np.isin(y, (0.0, 1.0)).all():
        raise TrainingDataError(f"target {name} must be 0/1 or true/false")
    return y


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _bool(spec: FeatureSpec, v: object) -> float:
    if _missing(v):
        return math.nan
    if isinstance(v, bool | np.bool_):
        return 1.0 if v else 0.0
    raise TrainingDataError(f"column {spec.name}: {v!r} is not true or false")
