"""Numeric file columns reach the matrix as arrays (values.array_values, then
FeatureSchema.encode_array) instead of as Python values (feature_values, then
matrix_of_columns). The array path must give the very floats of the value path, and take a
column only when the value path takes it too, whatever the column holds."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from app.book.values import array_values, feature_values
from app.features.schema import FeatureSchema
from app.features.spec import FeatureSpec

BIG = 2.0**53
# Values a file may hold, the hostile ones included.
FLOATS = [0.0, -0.0, 1.0, 2.0, 0.5, -3.0, 17.0, 1e-300, 1e300, math.inf, -math.inf, math.nan,
          BIG, BIG + 2, -BIG, 1e20, 120.0, 121.0, 99.5]
INTS = [0, 1, 2, -1, 17, 120, 121, 2**53, 2**53 + 1, -(2**53) - 1, 2**62, -(2**63)]
SPECS = [
    FeatureSpec(name="n", kind="number"),
    FeatureSpec(name="nb", kind="number", minimum=0, maximum=120, nullable=False),
    FeatureSpec(name="i", kind="integer"),
    FeatureSpec(name="ib", kind="integer", minimum=0, maximum=120),
    FeatureSpec(name="ir", kind="integer", nullable=False),
    FeatureSpec(name="b", kind="boolean"),
    FeatureSpec(name="br", kind="boolean", nullable=False),
]
SPEC = {s.name: s for s in SPECS}


def _columns(rng: np.random.Generator, n: int) -> list[pa.Array]:
    """Random float64, int64 and boolean columns: clean ones (drawn from few values) and
    hostile ones, with and without nulls."""
    out = []
    for pool, kind in ((FLOATS, pa.float64()), (INTS, pa.int64()), ([True, False], pa.bool_())):
        for size in (2, 3, len(pool)):
            some = rng.permutation(len(pool))[:size]  # a few distinct values, or all
            values = [pool[k] for k in rng.choice(some, n)]
            out.append(pa.array(values, type=kind))
            nulls = rng.random(n) < 0.2
            out.append(pa.array([None if z else v for v, z in zip(values, nulls, strict=True)],
                                type=kind))
    out.append(pa.array([None] * n, type=pa.float64()))
    return out


def _by_values(name: str, column: pa.Array) -> np.ndarray | None:
    schema = FeatureSchema([SPEC[name]])  # one feature: the others' absence fails nothing
    x = schema.matrix_of_columns({name: feature_values(column, SPEC[name])}, len(column))
    return None if x is None else x[:, 0]


def _by_array(name: str, column: pa.Array) -> np.ndarray | None:
    got = array_values(column, SPEC[name])
    return None if got is None else FeatureSchema(SPECS).encode_array(name, *got)


@pytest.mark.parametrize("seed", range(40))
def test_the_array_path_gives_the_floats_of_the_value_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    taken = 0
    for column in _columns(rng, 12):
        for spec in SPECS:
            fast = _by_array(spec.name, column)
            slow = _by_values(spec.name, column)
            if fast is None:
                continue
            taken += 1
            assert slow is not None, (spec, column)
            # Bit for bit (a -0.0 that was the integer 0 must read +0.0), NaN where missing.
            same = (fast.view(np.int64) == slow.view(np.int64)) | (np.isnan(fast)
                                                                  & np.isnan(slow))
            assert same.all(), (spec, column, fast, slow)
    assert taken  # the array path is used at all


def test_clean_numeric_columns_take_the_array_path() -> None:
    cases = {
        "n": pa.array([1.5, None, 3.0, math.nan]),
        "nb": pa.array([0.0, 120.0, 7.25]),
        "i": pa.array([1.0, None, -0.0, 4.0]),
        "ib": pa.array([0, 120, None], type=pa.int64()),
        "b": pa.array([True, None, False]),
        "br": pa.array([0.0, 1.0, 1.0]),
    }
    for name, column in cases.items():
        fast = _by_array(name, column)
        assert fast is not None, name
        slow = _by_values(name, column)
        assert slow is not None
        assert fast.tobytes() == np.where(np.isnan(slow), np.nan, slow).tobytes(), name


def test_what_the_value_path_refuses_is_left_to_it() -> None:
    refused = {
        "nb": pa.array([1.0, None]),  # required
        "ib": pa.array([121.0, 3.0]),  # above the maximum
        "i": pa.array([1.5, 2.0]),  # not whole
        "ir": pa.array([2**62, 1], type=pa.int64()),  # beyond 2**53
        "b": pa.array([0, 2], type=pa.int64()),  # neither 0 nor 1
        "n": pa.array([True, False]),  # a boolean for a number
    }
    for name, column in refused.items():
        slow = _by_values(name, column)
        fast = _by_array(name, column)
        if slow is None:
            assert fast is None, name
