"""Train the three default model families from a book and wrap each in a verified bundle.

Every trainer uses the same deterministic split of the book (seeded permutation): 80% of
rows fit the trees, 20% are held out for the metrics in the manifest. Churn carves a
further 15% calibration slice out of the training share for its calibrator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from app.bundles.io import Bundle
from app.features.contract import DEFAULT_FEATURES
from app.features.spec import FeatureSpec
from app.scoring.families import calibrate
from app.training import lgbm
from app.training.bundling import model_bundle
from app.training.calibration import both_calibrators, choose_calibrator
from app.training.dataset import TrainingDataError, encode_book, split_rows
from app.training.metrics import (
    binary_log_loss,
    binary_metrics,
    brier,
    class_prediction_metrics,
    multiclass_metrics,
    product_metrics,
    reliability,
)
from app.training.reasons import default_reason_codes
from app.training.synth import PRODUCTS, TIER_THRESHOLDS, WALLET_TIERS

TIER_ROUNDS = 150
CHURN_ROUNDS = 300
PRODUCT_ROUNDS = 120
TEST_SHARE = 0.2
CALIBRATION_SHARE = 0.15

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
        reference_x=x[split.test], classes=WALLET_TIERS, metrics=metrics,
        training_data=_training_data(book, seed, source, split.sizes(), {"wallet_tier": shares}),
        label=f"wallet tier, {source or 'book'}, seed {seed}", created_at=created_at,
    )


def churn_bundle(
    x: np.ndarray,
    y: np.ndarray,
    specs: Sequence[FeatureSpec],
    *,
    seed: int,
    rounds: int,
    reason_codes: Mapping[str, Any],
    training_data: dict[str, Any],
    label: str,
    num_threads: int = lgbm.DEFAULT_THREADS,
    progress: bool = False,
    created_at: str | None = None,
    early_stopping: int | None = None,
    model_params: Mapping[str, Any] | None = None,
) -> Bundle:
    """Fit a binary churn model, choose and fit its calibrator, measure, and bundle it."""
    split = split_rows(len(y), seed, test=TEST_SHARE, calibration=CALIBRATION_SHARE)
    params = lgbm.lgb_params("binary", seed=seed, num_threads=num_threads,
                             **{"num_leaves": 63, "learning_rate": 0.03,
                                **dict(model_params or {})})
    train_rows, valid = split.train, None
    if early_stopping:
        # Stop on a slice of the training share, never on calibration or test rows.
        shuffled = np.random.default_rng(np.random.SeedSequence([seed, 13])).permutation(
            split.train)
        cut = len(shuffled) * 85 // 100
        train_rows, stop_rows = np.sort(shuffled[:cut]), np.sort(shuffled[cut:])
        valid = lgbm.dataset(x[stop_rows], y[stop_rows], specs, params)
    train = lgbm.dataset(x[train_rows], y[train_rows], specs, params)
    booster = lgbm.fit(train, params, rounds, desc="churn", progress=progress,
                       valid=valid, early_stopping=early_stopping)

    def scores(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = np.asarray(booster.predict(x[rows], raw_score=True))
        return raw, 1.0 / (1.0 + np.exp(-raw))

    raw_c, p_c = scores(split.calibration)
    y_c = y[split.calibration]
    calibrator, selection = choose_calibrator(raw_c, p_c, y_c, seed=seed)
    raw_t, p_t = scores(split.test)
    y_t = y[split.test]
    p_cal = calibrate(calibrator, raw_t, p_t)
    base = float(np.mean(y[split.train]))
    metrics = {
        "test_rows": len(y_t),
        "trees": booster.num_trees(),
        "base_rate": _r(np.mean(y_t)),
        "uncalibrated": binary_metrics(y_t, p_t),
        "calibrated": binary_metrics(y_t, p_cal),
        "calibration": {
            **selection,
            "on_test": {m: binary_metrics(y_t, calibrate(c, raw_t, p_t))
                        for m, c in both_calibrators(raw_c, p_c, y_c).items()},
        },
        "baseline_base_rate": {
            "log_loss": _r(binary_log_loss(y_t, np.full(len(y_t), base))),
            "brier": _r(brier(y_t, np.full(len(y_t), base))),
        },
        "reliability": reliability(y_t, p_cal),
        "ece_bins": 10,
    }
    training_data = {**training_data, "split": split.sizes()}
    return model_bundle(
        family="churn", boosters={"churn": booster}, features=specs,
        reference_x=x[split.test], calibrator=calibrator, reason_codes=reason_codes,
        metrics=metrics, training_data=training_data, label=label, created_at=created_at,
    )


def train_churn(book: Book, seed: int, *, rounds: int = CHURN_ROUNDS,
                num_threads: int = lgbm.DEFAULT_THREADS, progress: bool = False,
                source: str = "", created_at: str | None = None) -> Bundle:
    """Calibrated 90-day churn model on the default features, with bank-worded reasons."""
    specs = DEFAULT_FEATURES
    x = encode_book(book, specs)
    y = np.asarray(_column(book, "churn_90d"), dtype=np.float64)
    rates = {"churn_90d": _r(np.mean(y))}
    return churn_bundle(
        x, y, specs, seed=seed, rounds=rounds, reason_codes=default_reason_codes(),
        training_data=_training_data(book, seed, source, {}, rates),
        label=f"churn 90d, {source or 'book'}, seed {seed}", num_threads=num_threads,
        progress=progress, created_at=created_at,
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
                            **product_metrics(y[split.test],
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
        metrics=summary, training_data=_training_data(book, seed, source, split.sizes(), rates),
        label=f"product propensities, {source or 'book'}, seed {seed}", created_at=created_at,
    )
