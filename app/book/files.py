"""Books on disk: CSV or Parquet read in chunks, the scored book and its errors written as
they come, so memory stays bounded whatever the size of the book.

CSV cells are read as text and turned into values by app/book/values.py; empty cells and
NA, N/A, NaN, null are missing values. A CSV row with too few or too many cells is reported
as an error of that row (field `(row)`) and the reading goes on.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.book.chunks import RowError
from app.book.output import METADATA_KEY, to_text_columns

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
NULLS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL"]


class BookError(Exception):
    """A problem with a whole file (not one row): unreadable, empty, no id column."""


class BookReader:
    """Column names, row count when known, and the chunks of a CSV or Parquet book."""

    def __init__(self, path: Path, *, delimiter: str | None = None) -> None:
        self.path = path
        suffix = path.suffix.lower()
        if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
            raise BookError(f"{path.name}: use a .csv or .parquet file")
        if not path.is_file():
            raise BookError(f"{path} is not a file")
        if path.stat().st_size == 0:
            raise BookError(f"{path.name} is empty (not even a header)")
        self.csv = suffix in CSV_SUFFIXES
        self.total_rows: int | None = None
        self.skipped: list[RowError] = []  # CSV rows of the wrong width
        if self.csv:
            self._open_csv(delimiter)
        else:
            try:
                self._parquet = pq.ParquetFile(path, buffer_size=1 << 20)
            except (pa.ArrowInvalid, OSError) as exc:
                raise BookError(f"{path.name} is not a readable Parquet file: {exc}") from None
            self.names: list[str] = list(self._parquet.schema_arrow.names)
            self.total_rows = self._parquet.metadata.num_rows
        if dup := sorted({n for n in self.names if self.names.count(n) > 1}):
            raise BookError(f"{path.name} has duplicate columns: {', '.join(dup)}")

    def _open_csv(self, delimiter: str | None) -> None:
        from app.training.table import sniff_delimiter

        sep = delimiter or ("\t" if self.path.suffix.lower() == ".tsv"
                            else sniff_delimiter(self.path))
        if len(sep) != 1:
            raise BookError(f"--delimiter must be one character, not {sep!r}")
        self.delimiter = sep
        with open(self.path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            sample = fh.read(1 << 16)
        try:
            header = next(csv.reader(sample.splitlines()[:1], delimiter=sep))
        except StopIteration:
            raise BookError(f"{self.path.name} has no header line") from None
        self.names = [h for h in header]
        lines = max(1, sample.count("\n"))
        self._line_bytes = max(16, len(sample.encode("utf-8", "replace")) // lines)

    def chunks(self, columns: Sequence[str], rows: int
               ) -> Iterator[tuple[pa.RecordBatch, list[int] | int]]:
        """(chunk, row numbers) of at most `rows` rows, only `columns` read; the row numbers
        are the number of the first row or, after skipped CSV rows, each row's number."""
        batches = self._csv_batches(columns, rows) if self.csv else self._parquet.iter_batches(
            batch_size=rows, columns=list(columns), use_threads=False)
        parsed = 0
        try:
            for big in batches:
                for start in range(0, big.num_rows, rows):
                    batch = big.slice(start, rows)
                    yield batch, self._numbers(parsed, batch.num_rows)
                    parsed += batch.num_rows
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise BookError(f"{self.path.name} cannot be read past row {parsed}: "
                            f"{str(exc).splitlines()[0]}") from None

    def _csv_batches(self, columns: Sequence[str], rows: int) -> Iterator[pa.RecordBatch]:
        def wrong_width(row: Any) -> str:
            number = (row.number - 1) if row.number is not None else 0
            self.skipped.append(RowError(number, None, "(row)",
                                         f"has {row.actual_columns} cells, the header "
                                         f"{row.expected_columns}"))
            return "skip"

        try:
            reader = pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(use_threads=False,
                                               block_size=max(1 << 16, rows * self._line_bytes)),
                parse_options=pacsv.ParseOptions(delimiter=self.delimiter,
                                                 invalid_row_handler=wrong_width),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(columns, pa.string()),
                    include_columns=list(columns), strings_can_be_null=True,
                    null_values=NULLS))
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise BookError(f"{self.path.name} is not a readable CSV file (delimiter "
                            f"{self.delimiter!r}): {str(exc).splitlines()[0]}") from None
        yield from reader

    def _numbers(self, parsed: int, n: int) -> list[int] | int:
        """Row numbers of parsed rows parsed+1 .. parsed+n, around the rows skipped."""
        if not self.skipped:
            return parsed + 1
        skipped = sorted(e.row for e in self.skipped)
        out, k = [], 0
        for p in range(parsed, parsed + n):
            number = p + 1 + k  # the (p+1)-th data row number that was not skipped
            while k < len(skipped) and skipped[k] <= number:
                k += 1
                number += 1
            out.append(number)
        return out


class BookWriter:
    """The scored book, Parquet (default) or CSV by the suffix of its path. Written to a
    temporary file beside it and renamed at the end: a run that stops leaves no half book."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.partial")
        self.csv = path.suffix.lower() in CSV_SUFFIXES
        self.schema = schema
        if self.csv:
            text = to_text_columns(pa.RecordBatch.from_pylist([], schema=schema)).schema
            self._csv: pacsv.CSVWriter | None = pacsv.CSVWriter(self.tmp, text)
            self._pq: pq.ParquetWriter | None = None
        else:
            self._csv = None
            # Dictionary pages only where they pay (text: ids, tiers, bands, action ids);
            # probabilities are all distinct.
            text = [f.name for f in schema if pa.types.is_string(f.type)]
            self._pq = pq.ParquetWriter(self.tmp, schema, compression="zstd",
                                        use_dictionary=text)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._pq is not None:
            self._pq.write_batch(batch)
        elif self._csv is not None:
            self._csv.write_batch(to_text_columns(batch))

    def close(self, extra: dict[str, Any] | None = None) -> None:
        """Finish the file (with `extra` merged into the Parquet run metadata) and rename it."""
        if self._pq is not None:
            if extra:
                import json

                meta = json.loads(self.schema.metadata[METADATA_KEY])
                self._pq.add_key_value_metadata({METADATA_KEY.decode(): json.dumps(
                    {**meta, **extra})})
            self._pq.close()
        elif self._csv is not None:
            self._csv.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        for writer in (self._pq, self._csv):
            if writer is not None:
                with contextlib.suppress(Exception):  # already failing; the file goes anyway
                    writer.close()
        self.tmp.unlink(missing_ok=True)


class ErrorsFile:
    """row,customer_id,field,problem — opened on the first error, so a clean run leaves none."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.rows: set[int] = set()
        self._fh: Any = None
        self._writer: Any = None
        path.unlink(missing_ok=True)  # an old run's errors would be mistaken for this one's

    def add(self, errors: Sequence[RowError]) -> None:
        if not errors:
            return
        if self._fh is None:
            self._fh = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._writer = csv.writer(self._fh)
            self._writer.writerow(["row", "customer_id", "field", "problem"])
        for e in errors:
            self._writer.writerow([e.row, e.customer_id or "", e.field, e.problem])
            self.rows.add(e.row)
        self.count += len(errors)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def errors_path(out: Path) -> Path:
    """Where the errors of a run writing `out` go: beside it, `<stem>.errors.csv`."""
    return out.with_name(f"{out.stem}.errors.csv")
