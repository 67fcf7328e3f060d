"""Reading a bank's own training table (CSV or Parquet) with errors a data scientist can act on.

Shared by `tierwise train churn|products|tier --data FILE` and `tierwise contract init`:
- CSV delimiter sniffed from the first lines (`,` `;` tab `|`) unless given; a `;` file whose
  numbers use a decimal comma (`1234,5`) is read as numbers.
- A column that is numbers apart from a few stray entries (`?`, `n/a `, `-`) is an error
  naming the column and examples, not a silent text column.
- Column names become feature names (lower case, other characters → `_`): `feature_name`.
- `check_binary_target`: at least MIN_ROWS rows and MIN_PER_CLASS of each class.
- `id_like_columns`: columns unique per row (integer or text) — a warning when one is left
  as a feature, because it identifies customers rather than describing them.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.training.dataset import TrainingDataError

MIN_ROWS = 300
MIN_PER_CLASS = 50
DELIMITERS = ",;\t|"
# A text column is "numbers with stray text" when at least this share of its values are numbers.
NUMERIC_SHARE = 0.9
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
_COMMA_NUMBER = re.compile(r"^\s*[-+]?\d+(,\d+)?\s*$")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}

Warn = Callable[[str], None]


def warn_stderr(message: str) -> None:
    """Default warning sink: one `warning: …` line on stderr."""
    sys.stderr.write(f"warning: {message}\n")


def feature_name(column: str) -> str:
    """A column name as a feature name (lower case, runs of other characters → _) or an error."""
    name = re.sub(r"[^a-z0-9]+", "_", column.strip().lower()).strip("_")
    if not _NAME.match(name):
        raise TrainingDataError(
            f"column {column!r} cannot be a feature name (cleaned up it reads {name!r}): a "
            "name must start with a letter and have at most 64 letters, digits or "
            "underscores; rename the column"
        )
    return name


def sniff_delimiter(path: Path) -> str:
    """The CSV delimiter from the first 64 KiB (`,` when nothing else fits)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        sample = f.read(65536)
    lines = sample.splitlines()
    if len(lines) > 1 and len(sample) == 65536:
        sample = "\n".join(lines[:-1])  # the last line may be cut short
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = lines[0] if lines else ""
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def read_table(path: Path | str, *, delimiter: str | None = None,
               text_columns: Sequence[str] = ()) -> pa.Table:
    """A CSV or Parquet file as an Arrow table; `text_columns` are read as text.

    Raises TrainingDataError for other formats, unreadable files, duplicate column names and
    numeric columns with stray text."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".txt", ".tsv", ".parquet", ".pq"):
        raise TrainingDataError(f"{path.name}: use a .csv or .parquet file")
    if not path.is_file():
        raise TrainingDataError(f"{path} is not a file")
    if suffix in (".csv", ".txt", ".tsv"):
        sep = delimiter or ("\t" if suffix == ".tsv" else sniff_delimiter(path))
        if len(sep) != 1:
            raise TrainingDataError(f"--delimiter must be one character, not {sep!r}")
        try:
            table = pacsv.read_csv(
                path, parse_options=pacsv.ParseOptions(delimiter=sep),
                convert_options=pacsv.ConvertOptions(
                    strings_can_be_null=True,
                    column_types={c: pa.string() for c in text_columns}))
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise TrainingDataError(f"{path.name} is not a readable CSV file "
                                    f"(delimiter {sep!r}): {str(exc).splitlines()[0]}") from None
    else:
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise TrainingDataError(f"{path.name} is not a readable Parquet file: {exc}") from None
    names = table.column_names
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise TrainingDataError(f"{path.name} has duplicate columns: {', '.join(dup)}")
    if table.num_rows == 0:
        raise TrainingDataError(f"{path.name} has no rows")
    return _numbers_in_text(table, path.name, set(text_columns))


def _numbers_in_text(table: pa.Table, source: str, keep_text: set[str]) -> pa.Table:
    """Text columns that are really numbers: decimal commas converted, stray text refused."""
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        if name in keep_text or not (pa.types.is_string(col.type)
                                     or pa.types.is_large_string(col.type)):
            continue
        values = [v for v in col.to_pylist() if v is not None and v.strip() != ""]
        if not values:
            continue
        if all(_COMMA_NUMBER.match(v) for v in values) and any("," in v for v in values):
            numbers = [None if v is None or not v.strip() else float(v.replace(",", "."))
                       for v in col.to_pylist()]
            table = table.set_column(i, name, pa.array(numbers, pa.float64()))
            continue
        numeric = sum(1 for v in values if _NUMBER.match(v))
        if numeric < len(values) and numeric >= NUMERIC_SHARE * len(values):
            stray = sorted({v for v in values if not _NUMBER.match(v)})
            rows = sum(1 for v in values if not _NUMBER.match(v))
            raise TrainingDataError(
                f"column {name!r} of {source} holds numbers but {rows} row(s) have text "
                f"{stray[:5]}: clean them (leave missing values empty), or list the column "
                "in --categorical if it is a category")
    return table


def text_values(column: pa.ChunkedArray) -> np.ndarray:
    """A column as an object array of str (None where missing)."""
    t = column.type
    if pa.types.is_floating(t):
        # 1.0 → "1": integer categories read from a file with missing values are floats
        return np.array([None if v is None or (isinstance(v, float) and math.isnan(v))
                         else (str(int(v)) if float(v).is_integer() else str(v))
                         for v in column.to_pylist()], dtype=object)
    text = column if pa.types.is_string(t) else pc.cast(column, pa.string())
    return np.array(text.to_pylist(), dtype=object)


def number_values(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """A numeric (or true/false) column as float64 (NaN where missing)."""
    t = column.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or \
            pa.types.is_boolean(t):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_null(t):
        return np.full(len(column), np.nan)
    raise TrainingDataError(f"column {name!r} has type {t}, not numbers")


def bool_values(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """A 0/1, true/false or yes/no column as an object array of bool (None where missing)."""
    out: list[bool | None] = []
    bad: set[str] = set()
    for v in column.to_pylist():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
            continue
        s = str(int(v) if isinstance(v, float) and v.is_integer() else v).strip().lower()
        if s in _TRUE:
            out.append(True)
        elif s in _FALSE:
            out.append(False)
        else:
            bad.add(str(v))
            out.append(None)
    if bad:
        raise TrainingDataError(f"column {name!r} must be true/false (or 0/1, yes/no), found "
                                f"{sorted(bad)[:5]}")
    return np.array(out, dtype=object)


def binary_target(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """Target values as 0/1 floats, NaN where missing; other values are an error."""
    t = column.type
    if pa.types.is_null(t):
        return np.full(len(column), math.nan)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t) \
            or pa.types.is_integer(t) or pa.types.is_floating(t):
        try:
            flags = bool_values(column, name)
        except TrainingDataError:
            raise TrainingDataError(
                f"target {name!r} must be 0/1, true/false or yes/no") from None
        return np.array([math.nan if v is None else float(v) for v in flags])
    raise TrainingDataError(f"target {name!r} has type {t}; it must be 0/1 or true/false")


def check_binary_target(y: np.ndarray, name: str, *, min_rows: int = MIN_ROWS,
                        min_per_class: int = MIN_PER_CLASS) -> None:
    """Enough rows, and enough of each class, to train and measure honestly."""
    n = len(y)
    if n < min_rows:
        raise TrainingDataError(
            f"{name}: {n} rows with a known outcome; at least {min_rows} are needed to train "
            "and measure a model")
    positives = int(np.sum(y == 1))
    for label, count in (("1 (positive)", positives), ("0 (negative)", n - positives)):
        if count < min_per_class:
            raise TrainingDataError(
                f"{name}: only {count} rows are {label}; at least {min_per_class} of each class "
                "are needed")


def id_like_columns(table: pa.Table, columns: Sequence[str]) -> list[str]:
    """Columns whose integer or text values are all present and unique per row."""
    out = []
    n = table.num_rows
    for name in columns:
        col = table.column(name)
        t = col.type
        if not (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)):
            continue
        if n >= 20 and col.null_count == 0 and len(pc.unique(col)) == n:
            out.append(name)
    return out


def warn_id_like(table: pa.Table, features: Sequence[str], warn: Warn = warn_stderr) -> None:
    """A warning per feature column that looks like a row identifier."""
    for name in id_like_columns(table, features):
        warn(f"column {name!r} is unique per row (an identifier?) and is used as a feature; "
             "pass it as --id-column (or drop it) unless it really describes the customer")


def require_columns(table: pa.Table, wanted: Sequence[tuple[str | None, str]],
                    source: str) -> None:
    """Each (column, role) must be a column of the table."""
    columns = table.column_names
    for column, what in wanted:
        if column is not None and column not in columns:
            raise TrainingDataError(f"{what} {column!r} is not a column of {source} "
                                    f"(columns: {', '.join(columns[:20])})")


def time_split(table: pa.Table, column: str, test_from: str) -> np.ndarray:
    """A boolean mask: True for test rows (time column >= test_from)."""
    col = table.column(column)
    t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        try:
            cut = float(test_from)
        except ValueError:
            raise TrainingDataError(
                f"--test-from {test_from!r} is not a number, but {column!r} is numeric") from None
        values = number_values(col, column)
        if np.isnan(values).any():
            raise TrainingDataError(f"time column {column!r} has missing values")
        return np.asarray(values >= cut)
    if pa.types.is_temporal(t):
        col = pc.cast(col, pa.string())
    texts = text_values(col)
    if any(v is None for v in texts):
        raise TrainingDataError(f"time column {column!r} has missing values")
    # ISO dates and timestamps (2024-01-31, 2024-01-31T10:00) sort as text
    return np.array([v >= test_from for v in texts], dtype=bool)
