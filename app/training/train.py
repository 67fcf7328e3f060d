"""Train the three default model families from a book and wrap each in a verified bundle.

Every trainer uses the same deterministic split of the book (seeded permutation): 80% of
rows train, 20% are held out for the metrics in the manifest. Churn is fitted honestly
(crossfit.py): K-fold CV on the training rows, calibrator on out-of-fold predictions, final
model refitted on all training rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from app.bundles.io import Bundle
from app.features.contract import DEFAULT_FEATURES
from app.features.family import ContractRef
from app.features.spec import FeatureSpec
from app.scoring.families import calibrate
from app.training import crossfit, lgbm
from app.training.bundling import model_bundle
from app.training.calibration import both_calibrators, choose_calibrator
from app.training.contract_input import attach_contract
from app.training.dataset import TrainingDataError, encode_book, split_rows
from app.training.metrics import (
    binary_log_loss,
    binary_metrics,
    binary_metrics_ci,
    brier,
    class_prediction_metrics,
    multiclass_metrics,
    product_metrics_ci,
    reliability,
)
from app.training.reasons import default_reason_codes
from app.training.synth import PRODUCTS, TIER_THRESHOLDS, WALLET_TIERS
from app.training.table import check_binary_target

TIER_ROUNDS = 150
CHURN_ROUNDS = 300
# A synthetic book has 100k+ rows: 3 folds of 50k+ rows pin the number of trees as well as 5
# would, at 60% of the cost.
BOOK_FOLDS = 3
PRODUCT_ROUNDS = 120
TEST_SHARE = 0.2

Book = Mapping[str, np.ndarray]


def _training_data(book: Book, seed: int, source: str, sizes: dict[str, int],
                   base_rates: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": source or "in-memory book",
        "rows": len(book[DEFAULT_FEATURES[0].name]),
        "seed": seed,
        "split": sizes,
        "base_rates": base_rates,
        "date_range": "n/a (synthetic book, no dates)",
    }


def _r(x: Any) -> float:
    return round(float(x), 6)


def _column(book: Book, name: str) -> np.ndarray:
    if name not in book:
        raise TrainingDataError(f"the data has no {name} column")
    return np.asarray(book[name])


def train_tier(book: Book, seed: int, *, rounds: int = TIER_ROUNDS,
               num_threads: int = lgbm.DEFAULT_THREADS, progress: bool = False,
               source: str = "", created_at: str | None = None) -> Bundle:
    """Wallet-tier model: multiclass over WALLET_TIERS, with metrics against two baselines."""
    specs = DEFAULT_FEATURES
    x = encode_book(book, specs)
    labels = _column(book, "wallet_tier")
    index = {t: i for i, t in enumerate(WALLET_TIERS)}
    if unknown := sorted({str(v) for v in labels} - set(index)):
        raise TrainingDataError(f"wallet_tier has unknown tiers {unknown[:5]}")
    y = np.fromiter((index[v] for v in labels), dtype=np.float64, count=len(labels))
    split = split_rows(len(y), seed, test=TEST_SHARE)
    params = lgbm.lgb_params("multiclass", seed=seed, num_threads=num_threads,
                             num_class=len(WALLET_TIERS))
    booster = lgbm.fit(lgbm.dataset(x[split.train], y[split.train], specs, params), params,
                       rounds, desc="tier", progress=progress)
    yt = y[split.test].astype(int)
    proba = np.asarray(booster.predict(x[split.test]))
    prior = np.bincount(y[split.train].astype(int), minlength=len(WALLET_TIERS)) / len(split.train)
    majority = np.full(len(yt), int(np.argmax(prior)))
    aum = np.asarray(book["aum_total"], dtype=float)[split.test]
    booked = np.searchsorted(np.asarray(TIER_THRESHOLDS), aum, side="right") - 1
    prior_loss = -np.mean(np.log(np.clip(prior[yt], 1e-15, 1)))
    metrics = {
        "test_rows": len(yt),
        "trees": booster.num_trees(),
        "model": multiclass_metrics(yt, proba, WALLET_TIERS),
        "baselines": {
            "majority_class": {**class_prediction_metrics(yt, majority, WALLET_TIERS),
                               "log_loss": _r(prior_loss)},
            "booked_tier_from_aum": class_prediction_metrics(yt, booked, WALLET_TIERS),
        },
    }
    shares = {t: _r(prior[i]) for i, t in enumerate(WALLET_TIERS)}
    return model_bundle(
        family="tier", boosters={"tier": booster}, features=specs,
        reference_x=x[split.test], training_x=x[split.train], classes=WALLET_TIERS,
        metrics=metrics,
        training_data=_training_data(book, seed, source, split.sizes(), {"wallet_tier": shares}),
        label=f"wallet tier, {source or 'book'}, seed {seed}", created_at=created_at,
    )


def churn_bundle(
    x: np.ndarray,
    y: np.ndarray,
    specs: Sequence[FeatureSpec],
    *,
    seed: int,
    reason_codes: Mapping[str, Any],
    training_data: dict[str, Any],
    label: str,
    test_mask: np.ndarray | None = None,
    test_description: str = "",
    folds: int = crossfit.DEFAULT_FOLDS,
    candidates: Sequence[Mapping[str, Any]] | None = None,
    max_rounds: int = crossfit.MAX_ROUNDS,
    learning_rate: float = 0.05,
    num_threads: int = lgbm.DEFAULT_THREADS,
    progress: bool = False,
    created_at: str | None = None,
    contract: ContractRef | None = None,
) -> Bundle:
    """Churn model with honest evaluation (crossfit.py): test slice held out (random share,
    or `test_mask`), K-fold CV settings and trees, calibrator on out-of-fold predictions,
    final model refitted on every training row; metrics with n, positives and 95% intervals."""
    if test_mask is None:
        split = split_rows(len(y), seed, test=TEST_SHARE)
        train_rows, test_rows = split.train, split.test
        test_description = test_description or f"random {TEST_SHARE:.0%} of rows (seed {seed})"
    else:
        train_rows, test_rows = np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
    check_binary_target(y[train_rows], "training rows", min_rows=150, min_per_class=25)
    check_binary_target(y[test_rows], "test rows", min_rows=100, min_per_class=10)
    x_tr, y_tr = x[train_rows], y[train_rows]
    cv = crossfit.cross_validate(
        x_tr, y_tr, specs, seed=seed, folds=folds, candidates=candidates,
        max_rounds=max_rounds, learning_rate=learning_rate, num_threads=num_threads,
        progress=progress, desc="churn cv")
    booster = crossfit.refit(x_tr, y_tr, specs, cv, desc="churn", progress=progress)
    p_oof = 1.0 / (1.0 + np.exp(-cv.oof_raw))
    calibrator, selection = choose_calibrator(cv.oof_raw, p_oof, y_tr, seed=seed)
    raw_t = np.asarray(booster.predict(x[test_rows], raw_score=True))
    p_t = 1.0 / (1.0 + np.exp(-raw_t))
    y_t = y[test_rows]
    p_cal = calibrate(calibrator, raw_t, p_t)
    base = float(np.mean(y_tr))
    metrics = {
        "test_rows": len(y_t),
        "trees": booster.num_trees(),
        "base_rate": _r(np.mean(y_t)),
        "evaluation": {
            "test": test_description, "train_rows": len(y_tr),
            "train_positives": int(y_tr.sum()), "test_rows": len(y_t),
            "test_positives": int(y_t.sum()),
            "method": f"{cv.folds}-fold CV on the training rows chose the setting and number "
                      "of trees; calibrator fitted on out-of-fold predictions; final model "
                      "refitted on all training rows; test rows used only here",
        },
        "uncalibrated": binary_metrics_ci(y_t, p_t, seed=seed),
        "calibrated": binary_metrics_ci(y_t, p_cal, seed=seed),
        "calibration": {
            **selection,
            "fitted_on": "out-of-fold predictions on the training rows",
            "on_test": {m: binary_metrics(y_t, calibrate(c, raw_t, p_t))
                        for m, c in both_calibrators(cv.oof_raw, p_oof, y_tr).items()},
        },
        "cv": cv.report(),
        "baseline_base_rate": {
            "log_loss": _r(binary_log_loss(y_t, np.full(len(y_t), base))),
            "brier": _r(brier(y_t, np.full(len(y_t), base))),
        },
        "reliability": reliability(y_t, p_cal),
        "ece_bins": 10,
    }
    training_data = {**training_data,
                     "split": {"train": len(train_rows), "test": len(test_rows)}}
    if contract is not None:
        training_data["contract"] = contract.model_dump()
    bundle = model_bundle(
        family="churn", boosters={"churn": booster}, features=specs,
        reference_x=x[test_rows], training_x=x_tr, calibrator=calibrator, reason_codes=reason_codes,
        metrics=metrics, training_data=training_data, label=label, created_at=created_at,
    )
    return attach_contract(bundle, contract)


def train_churn(book: Book, seed: int, *, rounds: int = CHURN_ROUNDS,
                num_threads: int = lgbm.DEFAULT_THREADS, progress: bool = False,
                source: str = "", created_at: str | None = None) -> Bundle:
    """Calibrated 90-day churn model on the default features, with bank-worded reasons."""
    specs = DEFAULT_FEATURES
    x = encode_book(book, specs)
    y = np.asarray(_column(book, "churn_90d"), dtype=np.float64)
    rates = {"churn_90d": _r(np.mean(y))}
    return churn_bundle(
        x, y, specs, seed=seed, reason_codes=default_reason_codes(),
        training_data=_training_data(book, seed, source, {}, rates),
        label=f"churn 90d, {source or 'book'}, seed {seed}", num_threads=num_threads,
        progress=progress, created_at=created_at, max_rounds=rounds, learning_rate=0.03,
        candidates=[{"num_leaves": 63, "min_data_in_leaf": 100}], folds=BOOK_FOLDS,
    )


def train_products(book: Book, seed: int, *, rounds: int = PRODUCT_ROUNDS,
                   products: Sequence[str] = PRODUCTS,
                   num_threads: int = lgbm.DEFAULT_THREADS, progress: bool = False,
                   source: str = "", created_at: str | None = None) -> Bundle:
    """One binary propensity model per product (named as in the catalogue's propensity_model)."""
    specs = DEFAULT_FEATURES
    x = encode_book(book, specs)
    labels = {p: np.asarray(_column(book, f"bought_{p}"), dtype=np.float64) for p in products}
    split = split_rows(len(x), seed, test=TEST_SHARE)
    params = lgbm.lgb_params("binary", seed=seed, num_threads=num_threads)
    first = labels[products[0]]
    # One binned dataset for every product: only the label changes.
    train = lgbm.dataset(x[split.train], first[split.train], specs, params).construct()
    boosters, metrics = {}, {}
    for product in products:
        y = labels[product]
        train.set_label(y[split.train])
        booster = lgbm.fit(train, params, rounds, desc=product, progress=progress)
        boosters[product] = booster
        metrics[product] = {"trees": booster.num_trees(),
                            **product_metrics_ci(y[split.test],
                                               np.asarray(booster.predict(x[split.test])))}
    aucs = [m["auc"] for m in metrics.values() if m["auc"] is not None]
    summary = {
        "test_rows": len(split.test),
        "trees": sum(m["trees"] for m in metrics.values()),
        "mean_auc": _r(np.mean(aucs)) if aucs else None,
        "min_auc": _r(np.min(aucs)) if aucs else None,
        "products": metrics,
    }
    rates = {f"bought_{p}": _r(np.mean(y)) for p, y in labels.items()}
    return model_bundle(
        family="products", boosters=boosters, features=specs, reference_x=x[split.test],
        training_x=x[split.train], metrics=summary,
        training_data=_training_data(book, seed, source, split.sizes(), rates),
        label=f"product propensities, {source or 'book'}, seed {seed}", created_at=created_at,
    )
