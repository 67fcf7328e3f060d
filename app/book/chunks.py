"""One chunk of a book → its scored rows and the rows that failed (file command and Spark).

A row is checked exactly as an item of POST /v1/score/batch: the customer id as the API's
CustomerId, the features by the context's schema (FeatureSchema.matrix column by column, and
encode_into row by row to word each problem when a chunk holds a bad row). The good rows are
scored together by score_rows; a bad row is reported with its number, field and problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.book.options import BookOptions
from app.book.output import OutputLayout
from app.book.values import feature_values
from app.errors import InvalidFeature
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
        names = [name for name in batch.schema.names if name in self.specs]
        columns = [feature_values(batch.column(name), self.specs[name]) for name in names]
        rows: list[dict[str, Any]] = [dict(zip(names, vals, strict=True))
                                      for vals in zip(*columns, strict=True)]
        if not names:
            rows = [{} for _ in range(n)]
        errors: list[RowError] = []
        keep = list(range(n))
        if not all(id_ok):
            keep = [i for i in keep if id_ok[i]]
            errors += [RowError(numbers[i], ids[i], self.id_column, _id_problem(ids[i]))
                       for i in range(n) if not id_ok[i]]
        x, keep = self._encode([rows[i] for i in keep], keep, ids, numbers, errors)
        customers = [CustomerInput(customer_id=ids[i], features=rows[i]) for i in keep]
        results = score_rows(self.ctx, x, customers, self.pipeline_options) if keep else []
        kept = set(keep)
        errors.sort(key=lambda e: e.row)
        return ChunkResult(self.layout.batch(results), errors,
                           [i for i in range(n) if i not in kept])

    def _encode(self, rows: list[dict[str, Any]], keep: list[int], ids: list[Any],
                numbers: Sequence[int], errors: list[RowError]) -> tuple[np.ndarray, list[int]]:
        """The feature matrix of the rows kept and which rows those are (bad ones reported)."""
        schema = self.ctx.schema
        try:
            return schema.matrix(rows), keep
        except InvalidFeature:
            pass  # some row is bad: check each, and say what is wrong with it
        x = np.empty((len(rows), len(schema)))
        ok = np.ones(len(rows), dtype=bool)
        for j, row in enumerate(rows):
            problems = schema.encode_into(row, x[j], prefix="features", required=self.required)
            if problems:
                ok[j] = False
                i = keep[j]
                errors += [RowError(numbers[i], ids[i], p.field.removeprefix("features."),
                                    p.problem) for p in problems]
        return x[ok], [i for i, good in zip(keep, ok, strict=True) if good]


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
