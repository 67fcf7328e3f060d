"""Named feature values → checked float rows; the one place training and serving share."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from app.errors import FieldProblem
from app.features.coding import BOOLEAN, INTEGER, NUMBER, decode_value, entries
from app.features.columns import encode_array, encode_columns, encode_named_columns
from app.features.plan import RowPlan
from app.features.spec import FeatureSpec


class FeatureSchema:
    """An ordered set of features; column i of every row is `specs[i]`."""

    def __init__(self, specs: Iterable[FeatureSpec]) -> None:
        self.specs: tuple[FeatureSpec, ...] = tuple(specs)
        self.names: tuple[str, ...] = tuple(s.name for s in self.specs)
        if len(set(self.names)) != len(self.names):
            raise ValueError("feature names must be unique")
        self.index: dict[str, int] = {n: i for i, n in enumerate(self.names)}
        self.required: frozenset[str] = frozenset(s.name for s in self.specs if not s.nullable)
        self._missing = tuple(math.nan for _ in self.specs)
        # name → (column, kind, lo, hi, category codes, coder): what _encode's fast paths need.
        self._table = entries(self.specs)
        self._plans: dict[tuple[tuple[str, ...], tuple[type, ...]], RowPlan] = {}

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
            plan = RowPlan.make(self._table, self.specs, *shape)
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
            if kind is NUMBER:
                if (t is float or t is int) and lo <= value <= hi:
                    values[i] = float(value)
                    continue
            elif kind is INTEGER:
                if t is int and lo <= value <= hi:
                    values[i] = float(value)
                    continue
            elif kind is BOOLEAN:
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

    def matrix_of_columns(self, columns: Mapping[str, Sequence[Any]], n: int,
                          encoded: Mapping[str, np.ndarray] | None = None
                          ) -> np.ndarray | None:
        """`matrix` for values held by feature (n each; a feature not in `columns` is missing
        in every row); None when some value is not plainly valid (or a name is not a
        feature): the caller then checks row by row (encode_into) to word the problems.
        `encoded`: columns already taken by `encode_array` (their values are not read)."""
        if not set(columns) <= self.index.keys():
            return None
        return encode_named_columns(self.specs, self._table, columns, n, encoded)

    def encode_array(self, name: str, values: np.ndarray, missing: np.ndarray | None,
                     source: type) -> np.ndarray | None:
        """Feature `name`'s float column from values of one Python type held in an array,
        as matrix_of_columns makes it of those values; None where it might refuse them
        (see columns.encode_array)."""
        return encode_array(self.specs[self.index[name]], self._table[name], values,
                            missing, source)

    def _columns(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """`matrix` column by column, or None for the row-by-row path (see columns.py)."""
        return encode_columns(self.specs, self._table, rows)

    def decode(self, row: np.ndarray) -> dict[str, Any]:
        """Named values back from a float row (for reference rows and tests)."""
        values: dict[str, Any] = {}
        for spec, x in zip(self.specs, row, strict=True):
            values[spec.name] = decode_value(spec, float(x))
        return values



def _contract(spec: FeatureSpec) -> tuple[Any, ...]:
    return (spec.kind, spec.categories)
