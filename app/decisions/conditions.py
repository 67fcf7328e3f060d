"""Catalogue conditions (`eligibility.conditions`): tests on any contract feature.

The definition (`condition_met`) reads a customer's named value as the request gave it
(numbers, booleans, category text, None when missing):

- a missing value (null or absent) meets only `is_null`; every other operator is false on it
  (`!=` and `not_in` included: an unknown value is not known to differ);
- `> >= < <=` hold only for numbers (booleans count as 0/1, as Python compares them);
- `==`, `!=`, `in`, `not_in` compare numbers (and booleans) with numbers, text with text; a
  number never equals a text.

Each condition is compiled once per catalogue into a closure (per customer) and, per batch,
into one array operation over the encoded column (`condition_mask`); both follow the rules
above, and tests/decisions/test_batch_form.py checks they agree.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.decisions.catalog import ORDER_OPS, Catalog, Condition, condition_features
from app.errors import FieldProblem
from app.features.family import FeatureContract
from app.features.spec import FeatureSpec

_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_NUMBER_TYPES = (int, float)  # bool is an int


def _missing(v: object) -> bool:
    return v is None or (type(v) is float and v != v)


def _same(v: object, x: object) -> bool:
    """v equals the condition's value x under the rules above (v not missing)."""
    if isinstance(x, str):
        return isinstance(v, str) and v == x
    return isinstance(v, _NUMBER_TYPES) and v == x


def condition_met(op: str, value: object, v: object) -> bool:
    """Whether a customer's value `v` meets `feature op value`: the definition."""
    if _missing(v):
        return op == "is_null"
    if op == "is_null":
        return False
    if op == "not_null":
        return True
    if op in _ORDER:
        return isinstance(v, _NUMBER_TYPES) and bool(_ORDER[op](v, value))
    if op in ("==", "!="):
        return _same(v, value) == (op == "==")
    hit = any(_same(v, x) for x in value)  # type: ignore[attr-defined]
    return hit == (op == "in")


def _fast(op: str, value: object) -> Callable[[object], bool]:
    """condition_met(op, value, ·) with the dispatch on op and value done once."""
    if op in _ORDER and isinstance(value, _NUMBER_TYPES):
        cmp = _ORDER[op]
        # NaN compares false, which is what a missing value must give.
        return lambda v: isinstance(v, _NUMBER_TYPES) and bool(cmp(v, value))
    if op == "is_null":
        return _missing
    if op == "not_null":
        return lambda v: not _missing(v)
    return lambda v: condition_met(op, value, v)


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """One condition ready for the hot path."""

    feature: str
    op: str
    value: object  # a tuple for in / not_in
    text: str  # "loans_other_banks > 0", for details and reasons
    test: Callable[[object], bool]

    @classmethod
    def of(cls, c: Condition) -> CompiledCondition:
        value = tuple(c.value) if c.op in ("in", "not_in") else c.value
        shown = "" if value is None else " " + (
            "[" + ", ".join(map(repr, value)) + "]" if isinstance(value, tuple) else repr(value))
        return cls(c.feature, c.op, value, f"{c.feature} {c.op}{shown}", _fast(c.op, value))


def condition_mask(c: CompiledCondition, spec: FeatureSpec | None,
                   column: np.ndarray | None) -> np.ndarray:
    """The array form of condition_met over one encoded column (NaN = missing; categories
    as their index in spec.categories); `spec` None: the schema has no such feature, so
    every customer's value is missing."""
    if spec is None or column is None:
        n = 0 if column is None else column.shape[0]
        return np.full(n, c.op == "is_null", dtype=bool)
    present = ~np.isnan(column)
    op, value = c.op, c.value
    if op == "is_null":
        return ~present
    if op == "not_null":
        return present
    category = spec.kind == "category"
    if op in ORDER_OPS:
        if category:  # a category's values are text, never numbers
            return np.zeros(column.shape[0], dtype=bool)
        mask: np.ndarray = _ORDER[op](column, float(value))  # type: ignore[arg-type]
        return mask
    items: Sequence[object] = value if isinstance(value, tuple) else (value,)
    codes = _codes(items, spec)
    same = np.isin(column, codes) if codes else np.zeros(column.shape[0], dtype=bool)
    if op in ("==", "in"):
        return same
    return present & ~same


def _codes(items: Sequence[object], spec: FeatureSpec) -> list[float]:
    """The encoded values a column holds where a value equals one of `items`."""
    if spec.kind == "category":
        cats = list(spec.categories)
        return [float(cats.index(x)) for x in items if isinstance(x, str) and x in cats]
    return [float(x) for x in items if isinstance(x, _NUMBER_TYPES)]


def catalog_features(catalog: Catalog) -> set[str]:
    """The features the catalogue's conditions name (the contract must declare them)."""
    return set(condition_features(catalog))


def condition_problems(catalog: Catalog, contract: FeatureContract) -> list[FieldProblem]:
    """Conditions that cannot work under `contract`: a feature it does not declare, an
    ordering on a category, a value of the wrong kind for the feature (BundleRejected)."""
    problems: list[FieldProblem] = []
    for a in catalog.actions:
        for i, c in enumerate(a.eligibility.conditions):
            where = f"catalog.actions.{a.id}.eligibility.conditions[{i}]"
            spec = contract.feature(c.feature)
            if spec is None:
                problems.append(FieldProblem(
                    f"{where}.feature", f"contract {contract.name!r} does not declare "
                    f"{c.feature!r}"))
                continue
            if problem := _kind_problem(c, spec):
                problems.append(FieldProblem(f"{where}.value", problem))
    return problems


def _kind_problem(c: Condition, spec: FeatureSpec) -> str | None:
    if c.op in ("is_null", "not_null"):
        return None
    if c.op in ORDER_OPS:
        return (f"{c.feature} is a category: {c.op} compares numbers only"
                if spec.kind == "category" else None)
    items = list(c.value) if c.op in ("in", "not_in") else [c.value]
    for x in items:
        if spec.kind == "category":
            if not isinstance(x, str) or x not in spec.categories:
                return (f"{x!r} is not a category of {c.feature} ("
                        + ", ".join(spec.categories) + ")")
        elif isinstance(x, str):
            return f"{c.feature} is {spec.kind}: {x!r} never equals one of its values"
    return None
