"""Churn models trained from a data scientist's own CSV or Parquet file.

Every column but the target, id and time columns becomes a feature. With `--contract` the
columns are read as that contract's features (names cleaned up to match; values checked
against it) and the manifest records the contract; without it each feature's spec (kind,
range, categories, nullability) is inferred from the data. Either way the bundle serves
exactly like the default churn bundle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.bundles.io import Bundle
from app.bundles.manifest import ReasonCode
from app.features.family import FeatureContract
from app.features.spec import FeatureSpec
from app.training import crossfit, lgbm
from app.training.contract_input import contract_features, load_contract
from app.training.dataset import TrainingDataError, encode_book
from app.training.reasons import generic_reason_codes
from app.training.table import (
    Warn,
    binary_target,
    check_binary_target,
    feature_name,
    read_table,
    require_columns,
    time_split,
    warn_id_like,
    warn_stderr,
)
from app.training.train import churn_bundle

__all__ = ["feature_name", "file_features", "infer_spec", "train_churn_from_file"]

MAX_CATEGORIES = 1000


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


def file_features(
    table: pa.Table,
    *,
    exclude: Sequence[str],
    categorical: Sequence[str],
    contract: FeatureContract | None,
    source: str,
    warn: Warn,
) -> tuple[list[FeatureSpec], np.ndarray, dict[str, Any]]:
    """The table's feature columns: read as the contract's features (with `contract`), or
    inferred from the data. Returns specs, the encoded matrix and what to record about it."""
    if contract is not None:
        specs, x, columns = contract_features(table, contract, exclude=exclude, source=source,
                                              warn=warn)
        warn_id_like(table, columns, warn)
        return specs, x, {"renamed_columns": {s.name: c for s, c in zip(specs, columns,
                                                                         strict=True)
                                               if s.name != c}}
    specs = []
    book: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}
    ignored: dict[str, str] = {}
    for column in table.column_names:
        if column in exclude:
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
        raise TrainingDataError(f"{source} has no feature columns besides the target")
    warn_id_like(table, [names[s.name] for s in specs], warn)
    info = {"renamed_columns": {s.name: names[s.name] for s in specs if s.name != names[s.name]},
            "ignored_columns": ignored}
    return specs, encode_book(book, specs), info


def holdout_mask(table: pa.Table, time_column: str | None,
              test_from: str | None) -> tuple[np.ndarray | None, str]:
    """The out-of-time test mask (None: a random test share) and how the test was chosen."""
    if (time_column is None) != (test_from is None):
        raise TrainingDataError("--time-column and --test-from go together")
    if time_column is None or test_from is None:
        return None, ""
    mask = time_split(table, time_column, test_from)
    return mask, f"out of time: rows with {time_column} >= {test_from}"


def train_churn_from_file(
    path: Path | str,
    *,
    target: str,
    id_column: str | None = None,
    categorical: Sequence[str] = (),
    contract: Path | str | None = None,
    ignore: Sequence[str] = (),
    delimiter: str | None = None,
    time_column: str | None = None,
    test_from: str | None = None,
    folds: int = crossfit.DEFAULT_FOLDS,
    seed: int = 0,
    num_threads: int = lgbm.DEFAULT_THREADS,
    progress: bool = False,
    created_at: str | None = None,
    warn: Warn = warn_stderr,
) -> Bundle:
    """A calibrated churn bundle from a file: features from its columns, label from `target`."""
    path = Path(path)
    feature_contract, ref = load_contract(contract, warn) if contract is not None else (None, None)
    table = read_table(path, delimiter=delimiter, text_columns=categorical)
    require_columns(table, [(target, "target"), (id_column, "id column"),
                            (time_column, "time column"),
                            *((c, "categorical column") for c in categorical),
                            *((c, "ignored column") for c in ignore)], path.name)
    y_all = binary_target(table.column(target), target)
    keep = ~np.isnan(y_all)
    if not keep.all():
        table = table.filter(pa.array(keep))
    y = y_all[keep]
    check_binary_target(y, f"target {target!r} of {path.name}")
    test_mask, test_description = holdout_mask(table, time_column, test_from)
    exclude = [c for c in (target, id_column, time_column, *ignore) if c is not None]
    specs, x, info = file_features(table, exclude=exclude, categorical=categorical,
                                   contract=feature_contract, source=path.name, warn=warn)
    training_data: dict[str, Any] = {
        "source": path.name,
        "rows": len(y),
        "rows_dropped_missing_target": int((~keep).sum()),
        "target": target,
        "id_column": id_column,
        "time_column": time_column,
        "not_features": list(ignore),
        "features": len(specs),
        **info,
        "seed": seed,
        "base_rates": {target: round(float(np.mean(y)), 6)},
        "date_range": "n/a",
    }
    return churn_bundle(
        x, y, specs, seed=seed, reason_codes=reason_codes_for(specs, feature_contract),
        training_data=training_data, label=f"custom churn from {path.name}, target {target}",
        num_threads=num_threads, progress=progress, created_at=created_at,
        test_mask=test_mask, test_description=test_description, folds=folds, contract=ref,
    )


def reason_codes_for(specs: Sequence[FeatureSpec],
                     contract: FeatureContract | None) -> dict[str, ReasonCode]:
    """Reason texts: the contract's where it has them, generic ones for the rest."""
    codes = generic_reason_codes(specs)
    if contract is not None:
        for spec in specs:
            feature = contract.feature(spec.name)
            if feature is not None and feature.reason is not None:
                # The churn texts only: the contract's product-facing `offer` sentence stays
                # in the contract (the scoring reads it from there).
                codes[spec.name] = ReasonCode(**feature.reason.model_dump(
                    include={"code", "up", "down", "format"}))
    return codes
