"""Many customers' named values → one matrix, column by column.

A few array operations per feature instead of a Python check per value; None when anything
is not plainly valid, so that the row-by-row path finds the problems and words them. Same
floats as FeatureSchema.row: Python ints (up to 2^53) and floats convert exactly, booleans
to 1.0/0.0, categories to their codes, missing and null values of nullable features to NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np

from app.features.coding import (
    BOOLEAN,
    CATEGORY,
    CATEGORY_TYPES,
    INTEGER,
    KIND_TYPES,
    MISSING,
    NUMBER,
    UNKNOWN,
    Entry,
)
from app.features.spec import FeatureSpec


def encode_columns(specs: tuple[FeatureSpec, ...], table: Mapping[str, Entry],
                   rows: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
    """The (rows, features) matrix, or None to leave the rows to the row-by-row path."""
    n = len(rows)
    if n < 2:
        return None
    out = np.empty((n, len(specs)), dtype=np.float64)
    present = 0
    # A missing value reads as MISSING, this very object, so it can be told from a NaN the
    # caller sent (list.count and dict look-ups match it by identity).
    names = tuple(s.name for s in specs)
    fill = tuple(MISSING for _ in specs)
    columns = zip(*[list(map(r.get, names, fill)) for r in rows], strict=True)
    for spec, column_values in zip(specs, columns, strict=True):
        entry = table[spec.name]
        got = _column(spec, entry, column_values)
        if got is None:
            return None
        column, missing = got
        present += n - missing
        out[:, entry[0]] = column
    if present != sum(map(len, rows)):  # some row names a feature this schema lacks
        return None
    return out


def encode_named_columns(specs: tuple[FeatureSpec, ...], table: Mapping[str, Entry],
                         columns: Mapping[str, Sequence[Any]], n: int,
                         encoded: Mapping[str, np.ndarray] | None = None) -> np.ndarray | None:
    """The (n, features) matrix from each feature's n values (None where missing; a feature
    absent from `columns` is missing in every row), or None when anything is not plainly
    valid, as encode_columns: for callers that hold their data by column (whole-book files),
    with no per-row look-ups at all. `encoded` holds columns encode_array already took."""
    out = np.empty((n, len(specs)), dtype=np.float64)
    absent = [MISSING] * n
    encoded = encoded or {}
    for spec in specs:
        entry = table[spec.name]
        done = encoded.get(spec.name)
        if done is not None:
            out[:, entry[0]] = done
            continue
        got = _column(spec, entry, columns.get(spec.name, absent))
        if got is None:
            return None
        out[:, entry[0]] = got[0]
    return out


def encode_array(spec: FeatureSpec, entry: Entry, values: np.ndarray,
                 missing: np.ndarray | None, source: type) -> np.ndarray | None:
    """`_column` for n values of one Python type `source` (float, int or bool) held in an
    array: floats as float64, ints as int64 or whole float64, bools as bool; `missing` marks
    the missing ones (None: none; their entries are not read). The float column _column
    makes of those Python values (null where missing), or None where it might refuse them:
    the caller then hands _column the Python values, which words nothing differently."""
    _, kind, lo, hi, _, _ = entry
    if missing is not None and not missing.any():
        missing = None
    if missing is not None and not spec.nullable:
        return None
    if kind is CATEGORY or source not in KIND_TYPES[kind]:
        return None  # bools only for booleans, floats only for numbers
    column = values.astype(np.float64)  # a copy; ints rounded as float(int) rounds them
    if source is int:
        column += 0.0  # a whole float -0.0 was the int 0
    if missing is not None:
        column[missing] = np.nan
    if kind is NUMBER or kind is INTEGER:
        checked = column[~missing] if missing is not None else column
        # As _column; a NaN not marked missing fails the range check (as it fails there).
        if not (np.all(checked >= lo) and np.all(checked <= hi)):
            return None
        if source is int and not np.all(np.abs(checked) <= 2.0**53):
            return None
    return column


def _column(spec: FeatureSpec, entry: Entry,
            vals: Sequence[Any]) -> tuple[np.ndarray, int] | None:
    """One feature's values as floats and how many were missing (not given), or None."""
    _, kind, lo, hi, codes, _ = entry
    types = set(map(type, vals))
    # MISSING is a float: a column without floats has none (and is not searched for it).
    missing = given_missing = vals.count(MISSING) if float in types else 0
    if type(None) in types:  # null: as missing from here on
        vals = [MISSING if v is None else v for v in vals]
        types.discard(type(None))
        missing = vals.count(MISSING)
    if missing and not spec.nullable:
        return None
    if missing and float in types and kind is not NUMBER and (
            list(map(type, vals)).count(float) != missing):
        return None  # a float of the caller's where none belongs
    if kind is CATEGORY:
        if not types <= CATEGORY_TYPES | ({float} if missing else set()):
            return None
        # MISSING stays MISSING (found by identity), anything else unknown is UNKNOWN.
        vals = list(map((codes | {MISSING: MISSING} if missing else codes).get, vals,
                        repeat(UNKNOWN)))
        if UNKNOWN in vals:
            return None
    elif not types <= KIND_TYPES[kind] | ({float} if missing else set()):
        return None
    try:
        if kind is BOOLEAN and not missing:  # only bools: the same 1.0/0.0, twice as fast
            column = np.array(vals, dtype=np.bool_).astype(np.float64)
        else:
            column = np.array(vals, dtype=np.float64)
    except (OverflowError, TypeError, ValueError):
        return None
    if missing != int(np.count_nonzero(column != column)):
        return None  # a NaN of the caller's, not a missing value
    if kind is NUMBER or kind is INTEGER:
        checked = column[column == column] if missing else column
        # Infinities fail these too; huge ints would not convert exactly.
        if not (np.all(checked >= lo) and np.all(checked <= hi)):
            return None
        if int in types and not np.all(np.abs(checked) <= 2.0**53):
            return None
    return column, given_missing
