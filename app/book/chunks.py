"""One chunk of a book → its scored rows and the rows that failed (file command and Spark).

A row is checked exactly as an item of POST /v1/score/batch: the customer id as the API's
CustomerId, the features by the context's schema (FeatureSchema.matrix_of_columns, the column
path of FeatureSchema.matrix; encode_into row by row to word each problem when a chunk holds
a bad row). The good rows are
scored together by score_rows; a bad row is reported with its number, field and problem.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.book.options import BookOptions
from app.book.output import OutputLayout
from app.book.values import array_values, feature_values
from app.scoring.context import ScoringContext
from app.scoring.pipeline import CustomerInput, score_rows

# As the API's CustomerId: 1 to 128 printable ASCII characters, no spaces.
ID_PATTERN = r"^[\x21-\x7e]{1,128}$"


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem of one input row: its 1-based number among the data rows (the header of a
    CSV file not counted), the customer id when it has one, the field and the problem."""

    row: int
    customer_id: str | None
    field: str
    problem: str


@dataclass(slots=True)
class ChunkResult:
    scored: pa.RecordBatch
    errors: list[RowError]
    failed_rows: list[int]  # positions in the chunk of the rows that failed


class BookScorer:
    """Scores chunks of one book on one context; the output layout is fixed up front."""

    def __init__(self, ctx: ScoringContext, options: BookOptions,
                 id_column: str = "customer_id") -> None:
        self.ctx = ctx
        self.options = options
        self.id_column = id_column
        self.layout = OutputLayout(ctx, options)
        self.pipeline_options = options.scoring(ctx)
        self.required = ctx.required_for(frozenset(options.parts))
        self.specs = {s.name: s for s in ctx.schema.specs}

    def columns_used(self, names: Sequence[str]) -> list[str]:
        """The columns of an input with these names that the run reads (id, then features)."""
        return [self.id_column] + [n for n in names if n in self.specs]

    def unknown_columns(self, names: Sequence[str]) -> list[str]:
        """Columns that are neither the id nor a feature of the live schema."""
        return [n for n in names if n != self.id_column and n not in self.specs]

    def score(self, batch: pa.RecordBatch | pa.Table,
              row_numbers: Sequence[int] | int = 1) -> ChunkResult:
        """Score a chunk; `row_numbers` gives each row's number for the error report (or the
        number of the first row, the others following)."""
        n = batch.num_rows
        numbers = (range(row_numbers, row_numbers + n) if isinstance(row_numbers, int)
                   else row_numbers)
        ids, id_ok = _customer_ids(batch.column(self.id_column))
        x = None
        if all(id_ok):
            # Every value plainly valid: the matrix column by column (numeric columns as
            # arrays, straight from Arrow), and each customer's named values read from the
            # columns in place (no dict per row), a column turned into Python values only
            # when a value of it is read by name.
            arrays = self._arrays(batch)
            columns = ChunkColumns(batch, self.specs, skip=arrays)
            x = self.ctx.schema.matrix_of_columns(columns, n, arrays)
        else:
            columns = ChunkColumns(batch, self.specs)
        if x is not None:
            keep = list(range(n))
            features: Sequence[Mapping[str, Any]] = list(map(RowValues, repeat(columns),
                                                              range(n)))
            errors: list[RowError] = []
        else:
            x, keep, features, errors = self._row_by_row(columns.complete(), n, ids, id_ok,
                                                         numbers)
        kept_ids = ids if len(keep) == n else [ids[i] for i in keep]
        customers = list(map(CustomerInput, kept_ids, features))
        results = score_rows(self.ctx, x, customers, self.pipeline_options) if keep else []
        failed = sorted(set(range(n)) - set(keep)) if errors else []
        return ChunkResult(self.layout.batch(results), errors, failed)

    def _arrays(self, batch: pa.RecordBatch | pa.Table) -> dict[str, np.ndarray]:
        """The feature columns the schema takes from arrays (see FeatureSchema.encode_array)."""
        schema = self.ctx.schema
        out = {}
        for name in batch.schema.names:
            spec = self.specs.get(name)
            if spec is not None and (got := array_values(batch.column(name), spec)) is not None:
                column = schema.encode_array(name, *got)
                if column is not None:
                    out[name] = column
        return out

    def _row_by_row(self, columns: dict[str, list[Any]], n: int, ids: list[Any],
                    id_ok: list[bool], numbers: Sequence[int]
                    ) -> tuple[np.ndarray, list[int], list[dict[str, Any]], list[RowError]]:
        """A chunk holding a bad row: each row checked as an API item (encode_into), every
        problem of every bad row reported; the matrix, positions and values of the others."""
        names = list(columns)
        rows: list[dict[str, Any]] = list(map(dict, map(zip, repeat(names),
                                                        zip(*columns.values(), strict=True))))
        if not names:
            rows = [{} for _ in range(n)]
        errors = [RowError(numbers[i], ids[i], self.id_column, _id_problem(ids[i]))
                  for i in range(n) if not id_ok[i]]
        schema = self.ctx.schema
        x = np.empty((n, len(schema)))
        keep = []
        for i, row in enumerate(rows):
            if not id_ok[i]:
                continue
            problems = schema.encode_into(row, x[i], prefix="features", required=self.required)
            if problems:
                errors += [RowError(numbers[i], ids[i], p.field.removeprefix("features."),
                                    p.problem) for p in problems]
            else:
                keep.append(i)
        errors.sort(key=lambda e: e.row)
        return x[keep], keep, [rows[i] for i in keep], errors


class ChunkColumns(dict[str, list[Any]]):
    """Feature name → a chunk's values of that feature as Python values (feature_values),
    each column converted when first read (`skip`: columns left until then; the others now):
    the batch path reads a few features by name, explanations and per-customer decisions
    may read any. Iterating sees the converted columns only; complete() converts all."""

    def __init__(self, batch: pa.RecordBatch | pa.Table, specs: Mapping[str, Any],
                 skip: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._batch, self._specs = batch, specs
        self._names = [name for name in batch.schema.names if name in specs]
        for name in self._names:
            if skip is None or name not in skip:
                self[name] = feature_values(batch.column(name), specs[name])

    def __missing__(self, name: str) -> list[Any]:
        if name not in self._specs or name not in self._names:
            raise KeyError(name)
        values = self[name] = feature_values(self._batch.column(name), self._specs[name])
        return values

    def complete(self) -> ChunkColumns:
        """Every column converted (and seen when iterating, in the chunk's order); self."""
        values = {name: self[name] for name in self._names}  # converts what is not yet
        self.clear()
        self.update(values)
        return self


class RowValues(Mapping[str, Any]):
    """One row's named values, read in place from the chunk's columns (what score_rows reads
    of a customer's features: a few look-ups by name). Null values read as absent, as a JSON
    client leaves them out."""

    __slots__ = ("_columns", "_i")

    def __init__(self, columns: Mapping[str, Sequence[Any]], i: int) -> None:
        self._columns = columns
        self._i = i

    def __getitem__(self, name: str) -> Any:
        value = self._columns[name][self._i]
        if value is None:
            raise KeyError(name)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        try:  # (not .get: a ChunkColumns converts a column when it is first subscripted)
            value = self._columns[name][self._i]
        except KeyError:
            return default
        return default if value is None else value

    def __contains__(self, name: object) -> bool:
        try:
            return self._columns[name][self._i] is not None  # type: ignore[index]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            return False

    def __iter__(self) -> Iterator[str]:
        columns = self._columns
        if isinstance(columns, ChunkColumns):
            columns = columns.complete()
        return (name for name, column in columns.items() if column[self._i] is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Scoring chunks without the cyclic garbage collector (what a chunk allocates forms no
    cycles and is freed as it goes; the collector would only walk the context's and the
    chunk's objects again and again, half the time of a chunk). Long-lived objects are
    frozen out of its sight; the youngest generation is collected on the way out."""
    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.collect(0)
        if enabled:
            gc.enable()


def _customer_ids(column: pa.Array | pa.ChunkedArray) -> tuple[list[Any], list[bool]]:
    """The ids as text (integer ids are written in decimal) and whether each is valid."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        try:
            column = pc.cast(column, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = column.to_pylist()
            return [None if v is None else str(v) for v in values], [False] * len(values)
    valid = pc.fill_null(pc.match_substring_regex(column, ID_PATTERN), False)
    return column.to_pylist(), valid.to_pylist()


def _id_problem(value: str | None) -> str:
    if value is None or value == "":
        return "is required"
    if len(value) > 128:
        return "must be at most 128 characters"
    return "must be printable ASCII without spaces"
