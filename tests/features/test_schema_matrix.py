"""FeatureSchema.matrix validates column by column when it can; its floats and its errors
are exactly those of the row-by-row path, whatever the rows hold."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import InvalidFeature
from app.features.contract import DEFAULT_FEATURES
from app.features.schema import FeatureSchema
from tests.customers import book_customers

SCHEMA = FeatureSchema(DEFAULT_FEATURES)
BOOK = [c["features"] for c in book_customers(300, seed=21)]
NULLABLE = [s.name for s in DEFAULT_FEATURES if s.nullable]
REQUIRED = [s.name for s in DEFAULT_FEATURES if not s.nullable]


def _row_by_row(rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(FeatureSchema, "_columns", lambda self, rows: None)
        return _outcome(rows)


def _outcome(rows: list[dict[str, Any]]) -> Any:
    try:
        return SCHEMA.matrix(rows)
    except InvalidFeature as err:
        return ("invalid", [(p.field, p.problem) for p in err.details])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and a.tobytes() == b.tobytes()  # bit for bit, NaN included
    return bool(a == b)


def test_valid_book_goes_column_by_column_and_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [dict(r) for r in BOOK]
    for i, r in enumerate(rows):  # nullable features left out, or sent as null
        for name in NULLABLE[i % 3::3]:
            if i % 2:
                r.pop(name, None)
            else:
                r[name] = None
    assert SCHEMA._columns(rows) is not None, "valid rows take the column path"
    fast = SCHEMA.matrix(rows)
    assert np.isnan(fast).any() and _same(fast, _row_by_row(rows, monkeypatch))
    assert _same(fast, np.array([SCHEMA.row(r) for r in rows]))


BAD_VALUES: list[Any] = [None, True, False, "x", "salaried", 1.5, 2.0, -1, 10**20, 10**400,
                         math.nan, math.inf, -math.inf, 0, 1e300, [], {}, np.float64(3.0)]


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_rows_give_what_the_row_path_gives(data: st.DataObject,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    n = data.draw(st.integers(2, 12), label="rows")
    start = data.draw(st.integers(0, len(BOOK) - n), label="start")
    rows = [dict(r) for r in BOOK[start:start + n]]
    for _ in range(data.draw(st.integers(0, 4), label="changes")):
        i = data.draw(st.integers(0, n - 1))
        name = data.draw(st.sampled_from([*SCHEMA.names, "not_a_feature"]))
        action = data.draw(st.sampled_from(("set", "drop")))
        if action == "drop":
            rows[i].pop(name, None)
        else:
            rows[i][name] = data.draw(st.sampled_from(BAD_VALUES) | st.integers(-10, 10**6)
                                      | st.floats(allow_nan=True, allow_infinity=True))
    assert _same(_outcome(rows), _row_by_row(rows, monkeypatch))


def test_required_missing_and_unknown_names_are_reported_by_row(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [dict(r) for r in BOOK[:5]]
    del rows[3][REQUIRED[0]]
    rows[4]["shoe_size"] = 42
    got = _outcome(rows)
    assert got == ("invalid", [(f"[3].features.{REQUIRED[0]}", "is required")])
    assert got == _row_by_row(rows, monkeypatch)


@pytest.mark.parametrize("name", [s.name for s in DEFAULT_FEATURES if s.nullable])
@pytest.mark.parametrize("bad", [2.5, 2.0, 1.0, 0.0, math.nan, "x", True, None, -5, 10**18])
def test_a_value_beside_a_missing_one_in_the_same_column(
        name: str, bad: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [dict(r) for r in BOOK[:4]]
    rows[0].pop(name, None)
    rows[2][name] = bad
    assert _same(_outcome(rows), _row_by_row(rows, monkeypatch))


# --- one row: the planned path (per names-and-types shape) gives what _encode gives --------


def _one_by_encode(f: dict[str, Any], required: frozenset[str] | None,
                   monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(FeatureSchema, "_planned", lambda self, features, required: None)
        return _one(f, required)


def _one(f: dict[str, Any], required: frozenset[str] | None) -> Any:
    out = np.full(len(SCHEMA), -7.0)
    problems = SCHEMA.encode_into(f, out, required=required)
    if problems:
        return ("invalid", [(p.field, p.problem) for p in problems])
    try:
        row = SCHEMA.row(f)
    except InvalidFeature:
        row = None  # narrower `required` than the full set: row() may refuse what passed
    if row is not None:
        assert row.tobytes() == out.tobytes()
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_row_gives_what_the_per_value_path_gives(data: st.DataObject,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    f = dict(BOOK[data.draw(st.integers(0, len(BOOK) - 1), label="customer")])
    for _ in range(data.draw(st.integers(0, 3), label="changes")):
        name = data.draw(st.sampled_from([*SCHEMA.names, "not_a_feature"]))
        if data.draw(st.booleans()):
            f.pop(name, None)
        else:
            f[name] = data.draw(st.sampled_from(BAD_VALUES) | st.integers(-10, 10**6)
                                | st.floats(allow_nan=True, allow_infinity=True)
                                | st.sampled_from(("salaried", "C3", "retired")))
    if data.draw(st.booleans()):  # another order of the same names: another plan
        f = dict(reversed(list(f.items())))
    required = data.draw(st.sampled_from((None, frozenset(), frozenset(REQUIRED[:3]))))
    for _ in range(2):  # the second time through the cached plan
        got = _one(f, required)
        assert _same(got, _one_by_encode(f, required, monkeypatch))


def test_valid_rows_take_the_planned_path() -> None:
    calls = []
    for f in BOOK[:50]:
        out = np.empty(len(SCHEMA))
        planned = SCHEMA._planned(f, SCHEMA.required)
        calls.append(planned is not None)
        if planned is not None:
            out[:] = planned
            assert out.tobytes() == SCHEMA.row(f).tobytes()
    assert all(calls)
