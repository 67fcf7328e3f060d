"""Named feature values → checked float rows; the one place training and serving share."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from app.errors import FieldProblem
from app.features.spec import FeatureSpec


class FeatureSchema:
    """An ordered set of features; column i of every row is `specs[i]`."""

    def __init__(self, specs: Iterable[FeatureSpec]) -> None:
        self.specs: tuple[FeatureSpec, ...] = tuple(specs)
        self.names: tuple[str, ...] = tuple(s.name for s in self.specs)
        if len(set(self.names)) != len(self.names):
            raise ValueError("feature names must be unique")
        self.index: dict[str, int] = {n: i for i, n in enumerate(self.names)}
        self.by_name: dict[str, FeatureSpec] = {s.name: s for s in self.specs}
        self.required: frozenset[str] = frozenset(s.name for s in self.specs if not s.nullable)
        self._coders = tuple(_coder(s) for s in self.specs)
        self._missing = tuple(math.nan for _ in self.specs)
        self._nans = tuple(_NAN for _ in self.specs)
        # name → (column, kind, lo, hi, category codes, coder): what _encode's fast paths need.
        self._table = {s.name: (i, _KINDS[s.kind], *_bounds(s),
                                {c: float(k) for k, c in enumerate(s.categories or ())},
                                self._coders[i])
                       for i, s in enumerate(self.specs)}
        self._plans: dict[tuple[tuple[str, ...], tuple[type, ...]], _Plan] = {}

    def __len__(self) -> int:
        return len(self.specs)

    @classmethod
    def union(cls, groups: Iterable[Sequence[FeatureSpec]]) -> FeatureSchema:
        """One schema covering several models' features; a name must mean the same everywhere."""
        merged: dict[str, FeatureSpec] = {}
        for group in groups:
            for spec in group:
                seen = merged.get(spec.name)
                if seen is None:
                    merged[spec.name] = spec
                elif _contract(seen) != _contract(spec):
                    raise ValueError(
                        f"feature {spec.name} is declared differently by two models"
                    )
        return cls(merged.values())

    def columns(self, names: Sequence[str]) -> np.ndarray:
        """Indices of `names` in this schema's rows (to feed one model its own columns)."""
        return np.fromiter((self.index[n] for n in names), dtype=np.intp, count=len(names))

    def encode_into(
        self, features: Mapping[str, Any], out: np.ndarray, prefix: str = "features",
        required: frozenset[str] | None = None,
    ) -> list[FieldProblem]:
        """Check `features` and write their floats into `out` (NaN where missing).

        Returns every problem found (unknown names, wrong types, out of range, missing
        required); `out` is only meaningful when the list is empty. `required` narrows the
        required names (e.g. to the models a request uses); default: all non-nullable ones.
        """
        required = self.required if required is None else required
        planned = self._planned(features, required)
        if planned is not None:
            out[:] = planned
            return []
        problems = self._encode(features, prefix, required)
        out[:] = problems.pop()
        return problems

    def _planned(self, features: Mapping[str, Any],
                 required: frozenset[str]) -> tuple[Any, ...] | None:
        """The row's values in column order (ints, floats, booleans, category codes, NaN),
        by a plan made once per sequence of names and value types; None when the values are
        not plainly valid (the caller's _encode then finds and words the problems).

        Callers send the same names in the same order with the same types request after
        request, so the per-name look-ups and type dispatch of _encode are done once per
        shape; what is left per request is the range checks and category look-ups."""
        keys = tuple(features)
        vals = tuple(features.values())
        shape = (keys, tuple(map(type, vals)))
        plan = self._plans.get(shape)
        if plan is None:
            plan = _Plan.make(self, *shape)
            if len(self._plans) < 256:
                self._plans[shape] = plan
        if not plan.ok or not required <= plan.names:
            return None
        for v, lo, hi in zip(plan.numbers(vals), plan.lo, plan.hi, strict=True):
            if not lo <= v <= hi:  # NaN fails too
                return None
        row = [*vals, math.nan]
        for pos, codes in plan.categories:
            code = codes.get(row[pos])
            if code is None:
                return None
            row[pos] = code
        out: tuple[Any, ...] = plan.gather(row)
        return out

    def _encode(self, features: Mapping[str, Any], prefix: str,
                required: frozenset[str]) -> list[Any]:
        """encode_into's work: the problems found, then the row's floats as the last item."""
        problems: list[Any] = []
        values = list(self._missing)
        table = self._table
        for name, value in features.items():
            entry = table.get(name)
            if entry is None:
                problems.append(FieldProblem(f"{prefix}.{name}", "is not a known feature"))
                continue
            i, kind, lo, hi, codes, coder = entry
            # The fast paths of the coders, inlined (each row has dozens of values); anything
            # else (None, integral floats, errors) goes through the coder itself, so every
            # message comes from one place.
            t = type(value)
            if kind is _NUMBER:
                if (t is float or t is int) and lo <= value <= hi:
                    values[i] = float(value)
                    continue
            elif kind is _INTEGER:
                if t is int and lo <= value <= hi:
                    values[i] = float(value)
                    continue
            elif kind is _BOOLEAN:
                if t is bool:
                    values[i] = 1.0 if value else 0.0
                    continue
            elif t is str:
                code = codes.get(value)
                if code is not None:
                    values[i] = code
                    continue
            encoded = coder(value)
            if type(encoded) is str:
                problems.append(FieldProblem(f"{prefix}.{name}", encoded))
            else:
                values[i] = encoded
        if required and not required.issubset(features.keys()):
            for name in self.names:
                if name in required and name not in features:
                    problems.append(FieldProblem(f"{prefix}.{name}", "is required"))
        problems.append(values)
        return problems

    def row(self, features: Mapping[str, Any], prefix: str = "features") -> np.ndarray:
        """One customer's float row; raises InvalidFeature listing every problem."""
        from app.errors import InvalidFeature

        planned = self._planned(features, self.required)
        if planned is not None:
            return np.array(planned, dtype=np.float64)
        problems = self._encode(features, prefix, self.required)
        values = problems.pop()
        if problems:
            raise InvalidFeature("some features are invalid", problems)
        return np.array(values, dtype=np.float64)

    def matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Rows of customers as one (n, features) matrix; raises InvalidFeature listing the
        problems of the first invalid row, as `row` does."""
        fast = self._columns(rows)
        if fast is not None:
            return fast
        values = []
        for i, features in enumerate(rows):
            problems = self._encode(features, f"[{i}].features", self.required)
            values.append(problems.pop())
            if problems:
                from app.errors import InvalidFeature

                raise InvalidFeature("some features are invalid", problems)
        if not values:
            return np.empty((0, len(self.specs)), dtype=np.float64)
        return np.array(values, dtype=np.float64)

    def _columns(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """`matrix` column by column (a few array operations per feature instead of a Python
        check per value); None when anything is not plainly valid, so that the row-by-row
        path finds the problems and words them. Same floats as `row`: Python ints (up to
        2^53) and floats convert exactly, booleans to 1.0/0.0, categories to their codes,
        missing and null values of nullable features to NaN."""
        n = len(rows)
        if n < 2:
            return None
        out = np.empty((n, len(self.specs)), dtype=np.float64)
        present = 0
        # A missing value reads as _NAN, this very object, so it can be told from a NaN the
        # caller sent (list.count and dict look-ups match it by identity).
        names, fill = self.names, self._nans
        columns = zip(*[list(map(r.get, names, fill)) for r in rows], strict=True)
        for spec, column_values in zip(self.specs, columns, strict=True):
            i, kind, lo, hi, codes, _ = self._table[spec.name]
            vals: Sequence[Any] = column_values
            missing = vals.count(_NAN)
            present += n - missing
            types = set(map(type, vals))
            if type(None) in types:  # null: as missing from here on
                vals = [_NAN if v is None else v for v in vals]
                types.discard(type(None))
                missing = vals.count(_NAN)
            if missing and not spec.nullable:
                return None
            if missing and float in types and kind is not _NUMBER and (
                    sum(type(v) is float for v in vals) != missing):
                return None  # a float of the caller's where none belongs
            if kind is _CATEGORY:
                if not types <= _CATEGORY_TYPES | ({float} if missing else set()):
                    return None
                vals = [codes.get(v, _UNKNOWN) if v is not _NAN else _NAN for v in vals]
                if _UNKNOWN in vals:
                    return None
            elif not types <= _KIND_TYPES[kind] | ({float} if missing else set()):
                return None
            try:
                column = np.array(vals, dtype=np.float64)
            except (OverflowError, TypeError, ValueError):
                return None
            if missing != int(np.count_nonzero(column != column)):
                return None  # a NaN of the caller's, not a missing value
            if kind is _NUMBER or kind is _INTEGER:
                checked = column[column == column] if missing else column
                # Infinities fail these too; huge ints would not convert exactly.
                if not (np.all(checked >= lo) and np.all(checked <= hi)):
                    return None
                if int in types and not np.all(np.abs(checked) <= 2.0**53):
                    return None
            out[:, i] = column
        if present != sum(map(len, rows)):  # some row names a feature this schema lacks
            return None
        return out

    def decode(self, row: np.ndarray) -> dict[str, Any]:
        """Named values back from a float row (for reference rows and tests)."""
        values: dict[str, Any] = {}
        for spec, x in zip(self.specs, row, strict=True):
            values[spec.name] = _decode(spec, float(x))
        return values


_NUMBER, _INTEGER, _BOOLEAN, _CATEGORY = "number", "integer", "boolean", "category"
_KINDS = {k: k for k in (_NUMBER, _INTEGER, _BOOLEAN, _CATEGORY)}  # one object per kind
# The value types each kind takes on the column path (exact types: no bools for numbers).
_NUMBER_TYPES: frozenset[type] = frozenset((int, float))
_INTEGER_TYPES: frozenset[type] = frozenset((int,))
_BOOLEAN_TYPES: frozenset[type] = frozenset((bool,))
_CATEGORY_TYPES: frozenset[type] = frozenset((str,))
_KIND_TYPES: dict[str, frozenset[type]] = {
    _NUMBER: _NUMBER_TYPES, _INTEGER: _INTEGER_TYPES, _BOOLEAN: _BOOLEAN_TYPES}
_UNKNOWN = object()  # a category value that is not one of the feature's categories
_NAN = float("nan")  # a value the row does not give (see FeatureSchema._columns)


def _getter(positions: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """itemgetter that always returns a tuple (itemgetter(i) alone returns the item)."""
    if len(positions) == 1:
        only = positions[0]
        return lambda seq: (seq[only],)
    if not positions:
        return lambda seq: ()
    return itemgetter(*positions)


class _Plan:
    """How to turn a request's values into a row when its names and value types are known:
    see FeatureSchema._planned. `ok` is False for shapes the plan cannot vouch for (an
    unknown name, a type the fast paths do not take, null for a non-nullable feature)."""

    __slots__ = ("categories", "gather", "hi", "lo", "names", "numbers", "ok")

    def __init__(self) -> None:
        self.ok = False
        self.names: frozenset[str] = frozenset()
        self.numbers: Callable[[Sequence[Any]], tuple[Any, ...]] = _getter(())
        self.lo: tuple[float, ...] = ()
        self.hi: tuple[float, ...] = ()
        self.categories: tuple[tuple[int, dict[str, float]], ...] = ()
        self.gather: Callable[[Sequence[Any]], tuple[Any, ...]] = _getter(())

    @classmethod
    def make(cls, schema: FeatureSchema, keys: tuple[str, ...],
             types: tuple[type, ...]) -> _Plan:
        plan = cls()
        nan_slot = len(keys)  # the NaN appended after the values
        gather = [nan_slot] * len(schema.specs)
        numbers: list[int] = []
        lo: list[float] = []
        hi: list[float] = []
        categories: list[tuple[int, dict[str, float]]] = []
        for pos, (name, t) in enumerate(zip(keys, types, strict=True)):
            entry = schema._table.get(name)
            if entry is None:
                return plan
            i, kind, low, high, codes, _ = entry
            if t is type(None):
                if not schema.specs[i].nullable:
                    return plan
                continue  # null: NaN, as missing
            if (kind is _NUMBER and t in _NUMBER_TYPES) or (kind is _INTEGER and t is int):
                numbers.append(pos)
                if t is int:  # beyond 2^53 an int does not convert exactly: _encode decides
                    low, high = max(low, -(2.0**53)), min(high, 2.0**53)
                lo.append(low)
                hi.append(high)
            elif kind is _CATEGORY and t is str:
                categories.append((pos, codes))
            elif not (kind is _BOOLEAN and t is bool):
                return plan
            gather[i] = pos
        plan.ok = True
        plan.names = frozenset(keys)
        plan.numbers, plan.lo, plan.hi = _getter(numbers), tuple(lo), tuple(hi)
        plan.categories = tuple(categories)
        plan.gather = _getter(gather)
        return plan


def _contract(spec: FeatureSpec) -> tuple[Any, ...]:
    return (spec.kind, spec.categories)


def _coder(spec: FeatureSpec) -> Any:
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

    lo, hi = _bounds(spec)
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


def _bounds(spec: FeatureSpec) -> tuple[float, float]:
    # The float limits (not infinities) so that Infinity never passes the fast path.
    lo = -sys.float_info.max if spec.minimum is None else spec.minimum
    hi = sys.float_info.max if spec.maximum is None else spec.maximum
    return lo, hi


def _decode(spec: FeatureSpec, x: float) -> Any:
    if math.isnan(x):
        return None
    if spec.kind == "category":
        return spec.categories[int(x)]
    if spec.kind == "boolean":
        return bool(x)
    if spec.kind == "integer":
        return int(x)
    return x
