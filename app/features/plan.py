"""One request's values → a row, by a plan made once per sequence of names and value types.

Callers send the same names in the same order with the same types request after request,
so the per-name look-ups and type dispatch are done once per shape; what is left per
request is the range checks and category look-ups (FeatureSchema._planned).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from app.features.coding import BOOLEAN, CATEGORY, INTEGER, NUMBER, NUMBER_TYPES, Entry
from app.features.spec import FeatureSpec


def getter(positions: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """itemgetter that always returns a tuple (itemgetter(i) alone returns the item)."""
    if len(positions) == 1:
        only = positions[0]
        return lambda seq: (seq[only],)
    if not positions:
        return lambda seq: ()
    return itemgetter(*positions)


class RowPlan:
    """How to turn a request's values into a row when its names and value types are known:
    see FeatureSchema._planned. `ok` is False for shapes the plan cannot vouch for (an
    unknown name, a type the fast paths do not take, null for a non-nullable feature)."""

    __slots__ = ("categories", "gather", "hi", "lo", "names", "numbers", "ok")

    def __init__(self) -> None:
        self.ok = False
        self.names: frozenset[str] = frozenset()
        self.numbers: Callable[[Sequence[Any]], tuple[Any, ...]] = getter(())
        self.lo: tuple[float, ...] = ()
        self.hi: tuple[float, ...] = ()
        self.categories: tuple[tuple[int, dict[str, float]], ...] = ()
        self.gather: Callable[[Sequence[Any]], tuple[Any, ...]] = getter(())

    @classmethod
    def make(cls, table: dict[str, Entry], specs: tuple[FeatureSpec, ...],
             keys: tuple[str, ...], types: tuple[type, ...]) -> RowPlan:
        plan = cls()
        nan_slot = len(keys)  # the NaN appended after the values
        gather = [nan_slot] * len(specs)
        numbers: list[int] = []
        lo: list[float] = []
        hi: list[float] = []
        categories: list[tuple[int, dict[str, float]]] = []
        for pos, (name, t) in enumerate(zip(keys, types, strict=True)):
            entry = table.get(name)
            if entry is None:
                return plan
            i, kind, low, high, codes, _ = entry
            if t is type(None):
                if not specs[i].nullable:
                    return plan
                continue  # null: NaN, as missing
            if (kind is NUMBER and t in NUMBER_TYPES) or (kind is INTEGER and t is int):
                numbers.append(pos)
                if t is int:  # beyond 2^53 an int does not convert exactly: _encode decides
                    low, high = max(low, -(2.0**53)), min(high, 2.0**53)
                lo.append(low)
                hi.append(high)
            elif kind is CATEGORY and t is str:
                categories.append((pos, codes))
            elif not (kind is BOOLEAN and t is bool):
                return plan
            gather[i] = pos
        plan.ok = True
        plan.names = frozenset(keys)
        plan.numbers, plan.lo, plan.hi = getter(numbers), tuple(lo), tuple(hi)
        plan.categories = tuple(categories)
        plan.gather = getter(gather)
        return plan

