"""A file's columns → the values a caller of the API would send, feature by feature.

The checks themselves stay in app/features (FeatureSchema.matrix and encode_into): this module
only undoes what files do to values, so that the same customer gives the same answer from a
file as from JSON:
- CSV cells arrive as text: numbers, integers and booleans are parsed (a cell that does not
  parse is kept as text, and the check says "must be a number");
- NaN in a float column is a missing value (pandas writes missing numbers that way);
- a float column of an integer feature holding whole numbers gives integers;
- 0/1 (and true/false, yes/no in text) are booleans for a boolean feature;
- dictionary-encoded and decimal columns are decoded.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.features.spec import FeatureSpec

TRUE = frozenset({"true", "1", "yes", "y", "t"})
FALSE = frozenset({"false", "0", "no", "n", "f"})
_INT = re.compile(r"^[-+]?\d+$")
# Whole numbers a float64 holds exactly (the API takes larger integers only as JSON ints).
_EXACT = 2.0**53

Array = Any  # pa.Array or pa.ChunkedArray (pyarrow has no usable stubs)


def feature_values(column: Array, spec: FeatureSpec) -> list[Any]:
    """The column's values for `spec`, as Python values (None where missing)."""
    t = column.type
    if pa.types.is_dictionary(t):
        return feature_values(pc.cast(column, t.value_type), spec)
    if pa.types.is_null(t):
        return [None] * len(column)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _from_text(column, spec)
    if pa.types.is_decimal(t) or pa.types.is_float16(t) or pa.types.is_float32(t):
        return feature_values(pc.cast(column, pa.float64()), spec)
    if pa.types.is_floating(t):
        nan = pc.is_nan(column)
        if pc.any(nan).as_py():
            column = pc.if_else(nan, pa.scalar(None, t), column)
        if spec.kind == "integer" or spec.kind == "boolean":
            return _whole(column, spec)
        return column.to_pylist()
    if pa.types.is_integer(t) and spec.kind == "boolean":
        return _booleans(column)
    return column.to_pylist()


def array_values(column: Array, spec: FeatureSpec
                 ) -> tuple[np.ndarray, np.ndarray | None, type] | None:
    """What feature_values gives for a float64, int64 or boolean column, as an array: (values,
    missing mask or None, the Python type of every value given), or None when the values
    would not all be of one type (or for another column type): then feature_values."""
    t = column.type
    floating = pa.types.is_float64(t)
    if not (floating or pa.types.is_int64(t) or pa.types.is_boolean(t)):
        return None
    missing = column.is_null().to_numpy(zero_copy_only=False) if column.null_count else None
    if missing is not None:
        column = column.fill_null(False if pa.types.is_boolean(t) else 0)
    values = column.to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(t):
        return values, missing, bool
    if floating:
        nan = np.isnan(values)  # missing, as null (pandas writes missing numbers as NaN)
        if nan.any():
            missing = nan if missing is None else missing | nan
    given = values if missing is None else values[~missing]
    if floating and spec.kind in ("integer", "boolean"):
        # _whole: integers when every value given is whole and exact, else the floats
        if not np.all((given == np.floor(given)) & (np.abs(given) <= _EXACT)):
            return values, missing, float
    elif floating:
        return values, missing, float
    if spec.kind == "boolean":  # _booleans: 0/1 as booleans, else a mix (feature_values)
        if not np.all((given == 0) | (given == 1)):
            return None
        return values == 1, missing, bool
    return values, missing, int


def _whole(column: Array, spec: FeatureSpec) -> list[Any]:
    """A float column of an integer (or 0/1 boolean) feature: integers when every value is
    whole and exact, else the floats (the check then names the rows that are not)."""
    valid = pc.drop_null(column)
    if len(valid) and not (pc.all(pc.equal(valid, pc.floor(valid))).as_py()
                           and pc.max(pc.abs(valid)).as_py() <= _EXACT):
        return column.to_pylist()
    ints = pc.cast(column, pa.int64())
    return _booleans(ints) if spec.kind == "boolean" else ints.to_pylist()


def _booleans(column: Array) -> list[Any]:
    """0/1 as False/True; any other number is kept (and refused by the check)."""
    values = column.to_pylist()
    if all(v is None or v == 0 or v == 1 for v in values):
        return [None if v is None else v == 1 for v in values]
    return [v if v is None or v not in (0, 1) else v == 1 for v in values]


def _from_text(column: Array, spec: FeatureSpec) -> list[Any]:
    """Text cells (a CSV file, or a text column of a Parquet file) as the feature's values."""
    kind = spec.kind
    if kind == "category":
        return column.to_pylist()
    if kind == "boolean":
        out: list[Any] = []
        for v in column.to_pylist():
            if v is None:
                out.append(None)
                continue
            word = v.strip().lower()
            out.append(True if word in TRUE else False if word in FALSE else v)
        return out
    try:
        parsed = pc.cast(pc.utf8_trim_whitespace(column), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return [_parse(v, kind) for v in column.to_pylist()]
    return feature_values(parsed, spec)  # as a float column: NaN missing, whole → integer


def _parse(text: str | None, kind: str) -> Any:
    """One cell: the number it spells, or the text itself when it spells none."""
    if text is None:
        return None
    s = text.strip()
    if kind == "integer" and _INT.match(s):
        return int(s)
    try:
        value = float(s)
    except ValueError:
        return text
    if math.isnan(value):
        return None
    if kind == "integer" and value.is_integer() and abs(value) <= _EXACT:
        return int(value)
    return value
