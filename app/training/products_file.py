"""Product propensity models from a bank's own table: `tierwise train products --data FILE
--contract C --products P1,P2 [--offered-column O]`.

Each product P has a 0/1 column named P (the catalogue's `propensity_model` name), or
`P=COLUMN` names the column: 1 when the customer took P in the outcome window. With
`--offered-column O` (the product offered to the customer in the window, empty when none)
P's model learns the response to an offer: it is trained and measured only on the rows
where P was offered. Evaluation is the churn model's
(crossfit.py): a held-out test slice (random or out-of-time), K-fold CV on the training rows
for the setting and number of trees, final model refitted on every training row. Product
models have no calibrator (the products family carries none); their AUC is reported with n,
positives and a DeLong 95% interval.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.bundles.io import Bundle
from app.training import crossfit, lgbm
from app.training.bundling import model_bundle
from app.training.contract_input import attach_contract, load_contract
from app.training.custom import file_features, holdout_mask
from app.training.dataset import TrainingDataError, split_rows
from app.training.metrics import product_metrics_ci
from app.training.table import (
    Warn,
    binary_target,
    check_binary_target,
    read_table,
    require_columns,
    text_values,
    warn_stderr,
)

TEST_SHARE = 0.2
_MODEL = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _r(x: float) -> float:
    return round(float(x), 6)


def product_columns(products: Sequence[str]) -> dict[str, str]:
    """Model name → 0/1 column, from `name` (the column is the name) or `name=column` items."""
    if not products:
        raise TrainingDataError("--products names no product")
    out: dict[str, str] = {}
    for item in products:
        name, _, column = item.partition("=")
        name, column = name.strip(), (column.strip() or name.strip())
        if not _MODEL.match(name):
            raise TrainingDataError(
                f"product {name!r}: a product model name is lower case letters, digits and _ "
                "(as the catalogue's propensity_model); rename the column or write "
                "name=column")
        if name in out:
            raise TrainingDataError(f"--products names {name} twice")
        out[name] = column
    return out


def train_products_from_file(
    path: Path | str,
    *,
    products: Sequence[str],
    contract: Path | str | None = None,
    offered_column: str | None = None,
    id_column: str | None = None,
    categorical: Sequence[str] = (),
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
    """A products bundle with one propensity model per product column."""
    path = Path(path)
    column_of = product_columns(products)
    products = tuple(column_of)
    feature_contract, ref = load_contract(contract, warn) if contract is not None else (None, None)
    table = read_table(path, delimiter=delimiter, text_columns=categorical)
    require_columns(table, [*((column_of[p], "product column") for p in products),
                            (offered_column, "offered column"), (id_column, "id column"),
                            (time_column, "time column"),
                            *((c, "ignored column") for c in ignore)], path.name)
    labels = {p: binary_target(table.column(column_of[p]), column_of[p]) for p in products}
    offered = (text_values(table.column(offered_column)) if offered_column is not None
               else None)
    test_mask, test_description = holdout_mask(table, time_column, test_from)
    if test_mask is None:
        test_mask = np.zeros(table.num_rows, dtype=bool)
        test_mask[split_rows(table.num_rows, seed, test=TEST_SHARE).test] = True
        test_description = f"random {TEST_SHARE:.0%} of rows (seed {seed})"
    exclude = [c for c in (*column_of.values(), offered_column, id_column, time_column, *ignore)
               if c is not None]
    specs, x, info = file_features(table, exclude=exclude, categorical=categorical,
                                   contract=feature_contract, source=path.name, warn=warn)

    boosters, metrics, rates = {}, {}, {}
    for product in products:
        y = labels[product]
        rows = ~np.isnan(y)
        if offered is not None:
            rows &= np.array([v is not None and v.strip() == product for v in offered])
        train, test = np.flatnonzero(rows & ~test_mask), np.flatnonzero(rows & test_mask)
        what = f"product {product!r}" + (" (rows where it was offered)" if offered is not None
                                         else "")
        check_binary_target(y[rows], what)
        check_binary_target(y[train], f"{what}, training rows", min_rows=150, min_per_class=25)
        check_binary_target(y[test], f"{what}, test rows", min_rows=50, min_per_class=5)
        cv = crossfit.cross_validate(x[train], y[train], specs, seed=seed, folds=folds,
                                     num_threads=num_threads, progress=progress, desc=product)
        booster = crossfit.refit(x[train], y[train], specs, cv, desc=product, progress=progress)
        boosters[product] = booster
        p_test = np.asarray(booster.predict(x[test]))
        metrics[product] = {"trees": booster.num_trees(), "train_rows": len(train),
                            "train_positives": int(y[train].sum()),
                            **product_metrics_ci(y[test], p_test), "cv": cv.report()}
        rates[product] = _r(np.mean(y[rows]))
        if progress:
            sys.stderr.write(f"{product}: AUC {metrics[product]['auc']} "
                             f"{metrics[product]['auc_95']} on {len(test)} test rows\n")
    aucs = [m["auc"] for m in metrics.values() if m["auc"] is not None]
    summary = {
        "test_rows": int(test_mask.sum()),
        "trees": sum(m["trees"] for m in metrics.values()),
        "mean_auc": _r(np.mean(aucs)) if aucs else None,
        "min_auc": _r(np.min(aucs)) if aucs else None,
        "evaluation": {"test": test_description, "folds": folds,
                       "response_to_offer": offered_column is not None},
        "products": metrics,
    }
    training_data: dict[str, Any] = {
        "source": path.name, "rows": table.num_rows, "products": column_of,
        "offered_column": offered_column, "id_column": id_column, "time_column": time_column,
        "not_features": list(ignore), "features": len(specs), **info, "seed": seed,
        "base_rates": rates,
        "split": {"train": int((~test_mask).sum()), "test": int(test_mask.sum())},
        "date_range": "n/a",
    }
    if ref is not None:
        training_data["contract"] = ref.model_dump()
    reference = x[np.flatnonzero(test_mask)] if test_mask.any() else x
    bundle = model_bundle(
        family="products", boosters=boosters, features=specs, reference_x=reference,
        training_x=x[np.flatnonzero(~test_mask)], metrics=summary,
        training_data=training_data, created_at=created_at,
        label=f"product propensities from {path.name}: {', '.join(products)}"[:200],
    )
    return attach_contract(bundle, ref)

