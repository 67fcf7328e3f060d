"""Churn models trained from a data scientist's own CSV or Parquet file.

Every column but the target and the id column becomes a feature; its contract (kind,
range, categories, nullability) is inferred from the data and written to the manifest, so
the bundle serves exactly like the default churn bundle.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.bundles.io import Bundle
from app.features.spec import FeatureSpec
from app.training import lgbm
from app.training.dataset import TrainingDataError, binary_labels, encode_book
from app.training.reasons import generic_reason_codes
from app.training.train import churn_bundle

CUSTOM_MAX_ROUNDS = 500
EARLY_STOPPING_ROUNDS = 30
MAX_CATEGORIES = 1000
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


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


def read_table(path: Path, categorical: Sequence[str] = ()) -> pa.Table:
    """A CSV or Parquet file as an Arrow table (listed categorical columns read as text)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            strings_can_be_null=True, column_types={c: pa.string() for c in categorical}))
    if suffix in (".parquet", ".pq"):
        return pq.read_table(path)
    raise TrainingDataError(f"{path.name}: use a .csv or .parquet file")


def _round_out(x: float, up: bool) -> float:
    """`x` rounded away from the data to three significant digits."""
    if x == 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(abs(x))) - 2)
    return float((math.ceil if up else math.floor)(x / step) * step)


def infer_spec(name: str, column: pa.ChunkedArray, *, categorical: bool,
               source: str) -> tuple[FeatureSpec, np.ndarray] | None:
    """The feature contract of one column and its values (None when it has no values)."""
    nullable = column.null_count > 0
    description = f"Column {source!r} of the training file."
    t = column.type
    if column.null_count == len(column) or pa.types.is_null(t):
        return None
    if categorical or pa.types.is_string(t) or pa.types.is_large_string(t) or \
            pa.types.is_dictionary(t):
        text = column if pa.types.is_string(t) else pc.cast(column, pa.string())
        values = np.array(text.to_pylist(), dtype=object)
        cats = tuple(sorted({v for v in values if v is not None}))
        if len(cats) > MAX_CATEGORIES:
            raise TrainingDataError(
                f"column {source!r} has {len(cats)} distinct values, too many for a category "
                "(an identifier? pass it as --id-column, or drop it)")
        spec = FeatureSpec(name=name, kind="category", categories=cats, nullable=nullable,
                           description=description)
        return spec, values
    if pa.types.is_boolean(t):
        values = np.array(column.to_pylist(), dtype=object)
        spec = FeatureSpec(name=name, kind="boolean", nullable=nullable, description=description)
        return spec, values
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        present = values[~np.isnan(values)]
        if not np.isfinite(present).all():
            raise TrainingDataError(f"column {source!r} has infinite values")
        if len(present) == 0:
            return None
        lo, hi = float(present.min()), float(present.max())
        # Serving refuses values far outside anything seen in training, but not growth:
        # the range is widened by twice its size (non-negative columns stay >= 0).
        span = max(hi - lo, abs(hi), abs(lo), 1.0)
        spec = FeatureSpec(
            name=name, kind="number", nullable=nullable or bool(np.isnan(values).any()),
            minimum=0.0 if lo >= 0 else _round_out(lo - 2 * span, up=False),
            maximum=_round_out(hi + 2 * span, up=True), description=description,
        )
        return spec, values
    raise TrainingDataError(
        f"column {source!r} has type {t}, which is not a number, text or true/false "
        "(convert dates to numbers such as days since)")


def _target(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """Target values as 0/1 floats, NaN where missing."""
    t = column.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        out = []
        for v in column.to_pylist():
            s = None if v is None else v.strip().lower()
            out.append(math.nan if s is None else 1.0 if s in _TRUE else 0.0 if s in _FALSE
                       else -1.0)
        y = np.array(out)
        if (y == -1.0).any():
            raise TrainingDataError(f"target {name!r} must be 0/1, true/false or yes/no")
        return y
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    raise TrainingDataError(f"target {name!r} has type {t}; it must be 0/1 or true/false")


def train_churn_from_file(
    path: Path | str,
    *,
    target: str,
    id_column: str | None = None,
    categorical: Sequence[str] = (),
    seed: int = 0,
    max_rounds: int = CUSTOM_MAX_ROUNDS,
    num_threads: int = lgbm.DEFAULT_THREADS,
    progress: bool = False,
    created_at: str | None = None,
) -> Bundle:
    """A calibrated churn bundle from a file: features from its columns, label from `target`."""
    path = Path(path)
    table = read_table(path, categorical)
    columns = table.column_names
    for wanted, what in [(target, "target"), (id_column, "id column"),
                         *((c, "categorical column") for c in categorical)]:
        if wanted is not None and wanted not in columns:
            raise TrainingDataError(f"{what} {wanted!r} is not a column of {path.name} "
                                    f"(columns: {', '.join(columns[:20])})")
    y_all = _target(table.column(target), target)
    keep = ~np.isnan(y_all)
    if not keep.all():
        table = table.filter(pa.array(keep))
    y = binary_labels(y_all[keep], target)
    if len(np.unique(y)) < 2:
        raise TrainingDataError(f"target {target!r} has only one value; churn needs both")

    specs: list[FeatureSpec] = []
    book: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}
    ignored: dict[str, str] = {}
    for column in columns:
        if column in (target, id_column):
            continue
        name = feature_name(column)
        if name in names:
            raise TrainingDataError(
                f"columns {names[name]!r} and {column!r} both become feature {name!r}")
        names[name] = column
        inferred = infer_spec(name, table.column(column), categorical=column in categorical,
                              source=column)
        if inferred is None:
            ignored[column] = "no values"
            continue
        spec, values = inferred
        specs.append(spec)
        book[name] = values
    if not specs:
        raise TrainingDataError(f"{path.name} has no feature columns besides the target")
    x = encode_book(book, specs)
    training_data: dict[str, Any] = {
        "source": path.name,
        "rows": len(y),
        "rows_dropped_missing_target": int((~keep).sum()),
        "target": target,
        "id_column": id_column,
        "features": len(specs),
        "renamed_columns": {s.name: names[s.name] for s in specs if s.name != names[s.name]},
        "ignored_columns": ignored,
        "seed": seed,
        "base_rates": {target: round(float(np.mean(y)), 6)},
        "date_range": "n/a",
    }
    n_train = len(y) * 65 // 100
    return churn_bundle(
        x, y, specs, seed=seed, rounds=max_rounds, reason_codes=generic_reason_codes(specs),
        training_data=training_data, label=f"custom churn from {path.name}, target {target}",
        num_threads=num_threads, progress=progress, created_at=created_at,
        early_stopping=EARLY_STOPPING_ROUNDS,
        model_params={"num_leaves": 31, "learning_rate": 0.05,
                      "min_data_in_leaf": max(10, min(100, n_train // 200))},
    )
