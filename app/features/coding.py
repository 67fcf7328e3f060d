"""How each kind of feature value becomes a float: the coders, their bounds, and back.

Every message about a bad value comes from FeatureSpec.check; the coders only take the
common cases fast and hand anything else to it.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from app.features.spec import FeatureSpec

NUMBER, INTEGER, BOOLEAN, CATEGORY = "number", "integer", "boolean", "category"
KINDS = {k: k for k in (NUMBER, INTEGER, BOOLEAN, CATEGORY)}  # one object per kind
# The value types each kind takes on the column path (exact types: no bools for numbers).
NUMBER_TYPES: frozenset[type] = frozenset((int, float))
INTEGER_TYPES: frozenset[type] = frozenset((int,))
BOOLEAN_TYPES: frozenset[type] = frozenset((bool,))
CATEGORY_TYPES: frozenset[type] = frozenset((str,))
KIND_TYPES: dict[str, frozenset[type]] = {
    NUMBER: NUMBER_TYPES, INTEGER: INTEGER_TYPES, BOOLEAN: BOOLEAN_TYPES}
UNKNOWN = object()  # a category value that is not one of the feature's categories
MISSING = float("nan")  # a value the row does not give (see FeatureSchema._columns)

# What FeatureSchema looks up per name: (column, kind, lo, hi, category codes, coder).
Entry = tuple[int, str, float, float, dict[str, float], Any]


def entries(specs: tuple[FeatureSpec, ...]) -> dict[str, Entry]:
    """name → Entry for every feature, in column order."""
    return {s.name: (i, KINDS[s.kind], *bounds(s),
                     {c: float(k) for k, c in enumerate(s.categories or ())}, coder(s))
            for i, s in enumerate(specs)}


def coder(spec: FeatureSpec) -> Any:
    """A function value → float, or → str naming the problem. Built once per feature."""
    check = spec.check
    if spec.kind == "category":
        codes = {c: float(i) for i, c in enumerate(spec.categories)}

        def code_category(value: Any) -> float | str:
            if value is None:
                return math.nan if spec.nullable else "is required and may not be null"
            if isinstance(value, str):
                code = codes.get(value)
                if code is not None:
                    return code
            return check(value) or "is not valid"

        return code_category
    if spec.kind == "boolean":

        def code_bool(value: Any) -> float | str:
            if value is True:
                return 1.0
            if value is False:
                return 0.0
            if value is None and spec.nullable:
                return math.nan
            return check(value) or "must be true or false"

        return code_bool

    lo, hi = bounds(spec)
    integer = spec.kind == "integer"

    def code_number(value: Any) -> float | str:
        # Fast path for the common case; anything unusual goes through the full check
        # so the message is the same everywhere.
        t = type(value)
        if t is int or (t is float and not integer):
            if lo <= value <= hi:
                return float(value)
        elif t is float and value.is_integer() and lo <= value <= hi:
            return value
        if value is None and spec.nullable:
            return math.nan
        return check(value) or "is not valid"

    return code_number


def bounds(spec: FeatureSpec) -> tuple[float, float]:
    """The float limits of a number feature (the largest floats when open)."""
    # The float limits (not infinities) so that Infinity never passes the fast path.
    lo = -sys.float_info.max if spec.minimum is None else spec.minimum
    hi = sys.float_info.max if spec.maximum is None else spec.maximum
    return lo, hi


def decode_value(spec: FeatureSpec, x: float) -> Any:
    """The named value a float stands for (None for NaN)."""
    if math.isnan(x):
        return None
    if spec.kind == "category":
        return spec.categories[int(x)]
    if spec.kind == "boolean":
        return bool(x)
    if spec.kind == "integer":
        return int(x)
    return x
