"""The tier model as wallet wealth: a LightGBM regression on log1p(wealth), trained only on
rows where wealth is known (disclosed assets, credit applications, KYC).

1. Labels: rows with a known, non-negative wealth W. Wealth is at least what this bank holds,
   so a W below the booked AUM is raised to it (and counted in the report).
2. A deterministic TEST_SHARE of the labelled rows is kept aside for the metrics.
3. K-fold CV on the other (training) rows with early stopping on the mean validation L2
   fixes the number of trees; each training row gets an out-of-fold prediction, and the
   out-of-fold residuals log1p(W) - mu give the residual quantiles of the manifest
   (PROBABILITIES, finer in the tails), i.e. the spread scoring uses for tier probabilities.
4. The final model is refitted on every training row with that number of trees.
5. Metrics on the test rows: MAE/RMSE of log wealth, the share inside the central 80%
   interval, tier accuracy and macro-F1 under the default policy's thresholds (scored as the
   service scores: conditioned on wealth >= booked AUM), against the booked tier from AUM;
   every figure with its sample size, accuracy and MAE with 95% intervals.

The tier itself is not learned: the service reads it from the live policy's thresholds
(app/scoring/wealth.py), so new thresholds need no retraining.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np

from app.bundles.io import Bundle
from app.bundles.manifest import WealthModel
from app.features.spec import FeatureSpec
from app.scoring.wealth import WealthTiers
from app.training import lgbm
from app.training.bundling import model_bundle
from app.training.dataset import TrainingDataError, split_rows
from app.training.metrics import class_prediction_metrics

TEST_SHARE = 0.2
FOLDS = 5
MAX_ROUNDS = 3000
EARLY_STOPPING = 50
MIN_LABELLED = 300
# Residual CDF points: every 0.5% from 0.5% to 99.5%, and finer in both tails.
PROBABILITIES: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.003, 0.004,
    *(round(0.005 * i, 4) for i in range(1, 200)),
    0.996, 0.997, 0.998, 0.999, 0.9995,
)


def _r(x: float, digits: int = 6) -> float | None:
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def wealth_labels(wealth: np.ndarray, aum: np.ndarray | None,
                  column: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(labelled row mask, label W raised to the booked AUM, rows raised). Missing wealth is
    no label; a negative or infinite one is an error naming the column."""
    w = np.asarray(wealth, dtype=np.float64)
    known = ~np.isnan(w)
    if (bad := known & ~np.isfinite(w)).any():
        raise TrainingDataError(f"wealth column {column!r}: {int(bad.sum())} infinite values")
    if (neg := known & (w < 0)).any():
        raise TrainingDataError(f"wealth column {column!r}: {int(neg.sum())} negative values "
                                f"(e.g. {w[neg][:3].tolist()}); wealth is never below 0")
    label = w.copy()
    raised = 0
    if aum is not None:
        with np.errstate(invalid="ignore"):
            below = known & (aum > w)
        raised = int(below.sum())
        label[below] = aum[below]
    return known, label, raised


def residual_quantiles(residuals: np.ndarray,
                       probabilities: Sequence[float] = PROBABILITIES) -> WealthModel:
    """The residual CDF points; a probability whose quantile does not rise above the
    previous one (tied residuals) is left out, so both sequences increase strictly."""
    qs = np.quantile(residuals, np.asarray(probabilities))
    keep_q: list[float] = []
    keep_p: list[float] = []
    for p, q in zip(probabilities, qs.tolist(), strict=True):
        if not keep_q or q > keep_q[-1]:
            keep_q.append(float(q))
            keep_p.append(float(p))
    if len(keep_q) < 2:
        raise TrainingDataError("the out-of-fold residuals are all equal: the wealth column "
                                "does not vary enough to learn from")
    return WealthModel(transform="log1p", residual_quantiles=tuple(keep_q),
                       probabilities=tuple(keep_p))


def cross_validate(x: np.ndarray, y: np.ndarray, specs: Sequence[FeatureSpec],
                   params: dict[str, Any], *, folds: int, seed: int,
                   max_rounds: int = MAX_ROUNDS,
                   early_stopping: int = EARLY_STOPPING) -> tuple[int, np.ndarray]:
    """(number of trees, out-of-fold predictions) by K-fold CV with early stopping."""
    if folds < 2:
        raise TrainingDataError("--folds must be at least 2")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 19]))
    fold = np.empty(len(y), dtype=int)
    fold[rng.permutation(len(y))] = np.arange(len(y)) % folds
    splits = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(folds)]
    res = lgb.cv({**params, "metric": "l2"}, lgbm.dataset(x, y, specs, params),
                 num_boost_round=max_rounds, folds=splits, return_cvbooster=True, seed=seed,
                 callbacks=[lgb.early_stopping(early_stopping, verbose=False)])
    cvb = res["cvbooster"]
    assert isinstance(cvb, lgb.CVBooster)
    trees = max(1, int(cvb.best_iteration) or max_rounds)
    oof = np.empty(len(y))
    for booster, (_, rows) in zip(cvb.boosters, splits, strict=True):
        oof[rows] = booster.predict(x[rows], num_iteration=trees)
    return trees, oof


def _mean_ci(values: np.ndarray) -> tuple[float | None, list[float | None]]:
    m = float(np.mean(values))
    half = 1.96 * float(np.std(values, ddof=1)) / math.sqrt(len(values)) if len(values) > 1 \
        else math.nan
    return _r(m), [_r(m - half), _r(m + half)]


def _share_ci(hits: np.ndarray) -> tuple[float | None, list[float | None]]:
    """A proportion with its 95% Wilson interval."""
    n, p, z = len(hits), float(np.mean(hits)), 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return _r(p), [_r(centre - half), _r(centre + half)]


def held_out_metrics(mu: np.ndarray, label: np.ndarray, aum: np.ndarray, model: WealthModel,
                 thresholds: Sequence[float], tiers: Sequence[str]) -> dict[str, Any]:
    """Log-wealth errors and tier accuracy (as the service scores) on held-out rows."""
    y = np.log1p(label)
    err = mu - y
    mae, mae_ci = _mean_ci(np.abs(err))
    curve = WealthTiers.of(model, thresholds)
    probs, _ = curve.many(mu, aum)
    pred = np.argmax(np.asarray(probs), axis=1)
    truth = np.searchsorted(np.asarray(thresholds), label, side="right") - 1
    booked = np.searchsorted(np.asarray(thresholds), np.nan_to_num(aum, nan=0.0),
                             side="right") - 1
    lo, hi = np.interp([0.1, 0.9], model.probabilities, model.residual_quantiles)
    inside = (err >= -hi) & (err <= -lo)  # y - mu within [q10, q90]
    acc, acc_ci = _share_ci(pred == truth)
    cover, cover_ci = _share_ci(inside)
    model_tiers = class_prediction_metrics(truth, pred, tiers)
    return {
        "rows": len(y),
        "log_wealth": {"mae": mae, "mae_ci95": mae_ci, "rmse": _r(np.sqrt(np.mean(err ** 2))),
                       "bias": _r(np.mean(err))},
        "interval_80": {"coverage": cover, "coverage_ci95": cover_ci},
        "tier": {"thresholds": dict(zip(tiers, thresholds, strict=True)),
                 "accuracy": acc, "accuracy_ci95": acc_ci,
                 "macro_f1": model_tiers["macro_f1"], "per_tier": model_tiers["per_class"],
                 "never_below_booked": bool((pred >= booked).all())},
        "baseline_booked_tier_from_aum": class_prediction_metrics(truth, booked, tiers),
    }


def train_wealth_tier(
    x: np.ndarray,
    specs: Sequence[FeatureSpec],
    wealth: np.ndarray,
    *,
    wealth_column: str,
    aum_feature: str | None,
    seed: int = 0,
    folds: int = FOLDS,
    max_rounds: int = MAX_ROUNDS,
    thresholds: Sequence[float] | None = None,
    tiers: Sequence[str] | None = None,
    num_threads: int = lgbm.DEFAULT_THREADS,
    progress: bool = False,
    source: str = "",
    created_at: str | None = None,
    model_params: Mapping[str, Any] | None = None,
    test_mask: np.ndarray | None = None,
) -> Bundle:
    """A verified wealth tier bundle from encoded features `x` (laid out like `specs`) and
    a wealth column (NaN where unknown); see the module docstring. `test_mask` (one bool per
    row, e.g. rows from a date on: an out-of-time test) chooses the test rows instead of a
    seeded random share of the labelled rows."""
    if thresholds is None or tiers is None:
        from app.training.default_config import default_policy

        policy = default_policy()
        thresholds = [t.min_aum for t in policy.tiers]
        tiers = list(policy.tier_names)
    names = [s.name for s in specs]
    aum = None
    if aum_feature is not None:
        if aum_feature not in names:
            raise TrainingDataError(f"the booked AUM feature {aum_feature!r} is not among the "
                                    "features")
        aum = x[:, names.index(aum_feature)]
    known, label, raised = wealth_labels(wealth, aum, wealth_column)
    rows = np.flatnonzero(known)
    if len(rows) < MIN_LABELLED:
        raise TrainingDataError(
            f"wealth column {wealth_column!r} is known for {len(rows)} rows; at least "
            f"{MIN_LABELLED} are needed to train and measure a wealth model")
    if test_mask is None:
        split = split_rows(len(rows), seed, test=TEST_SHARE)
        train, test = rows[split.train], rows[split.test]
    else:
        train, test = rows[~test_mask[rows]], rows[test_mask[rows]]
        if len(test) < MIN_LABELLED // 4 or len(train) < MIN_LABELLED:
            raise TrainingDataError(
                f"the out-of-time split leaves {len(train)} labelled training and {len(test)} "
                f"labelled test rows; at least {MIN_LABELLED} and {MIN_LABELLED // 4} are needed")
    y = np.log1p(label)
    params = lgbm.lgb_params("regression", seed=seed, num_threads=num_threads,
                             **{"min_data_in_leaf": 50, **dict(model_params or {})})
    if progress:
        sys.stderr.write(f"tier: {folds}-fold CV on {len(train)} labelled rows\n")
    trees, oof = cross_validate(x[train], y[train], specs, params, folds=folds, seed=seed,
                                max_rounds=max_rounds)
    model = residual_quantiles(y[train] - oof)
    booster = lgbm.fit(lgbm.dataset(x[train], y[train], specs, params), params, trees,
                       desc="tier", progress=progress)
    mu_test = np.asarray(booster.predict(x[test]))
    aum_test = aum[test] if aum is not None else np.full(len(test), np.nan)
    metrics = {
        "trees": booster.num_trees(),
        "rows": {"table": len(wealth), "labelled": len(rows),
                 "unlabelled": len(wealth) - len(rows), "train": len(train), "test": len(test),
                 "raised_to_aum": raised},
        "cv": {"folds": folds, "trees": trees,
               "oof_rmse_log": _r(np.sqrt(np.mean((y[train] - oof) ** 2)))},
        "test": held_out_metrics(mu_test, label[test], aum_test, model, thresholds, tiers),
    }
    training_data = {
        "source": source or "in-memory table", "rows": len(wealth), "seed": seed,
        "wealth_column": wealth_column, "aum_feature": aum_feature,
        "split": {"train": len(train), "test": len(test), "unlabelled": len(wealth) - len(rows),
                  "test_rows": "random" if test_mask is None else "out of time"},
        "label": "log1p(wealth), raised to the booked AUM where below it",
    }
    return model_bundle(
        family="tier", boosters={"tier": booster}, features=specs, reference_x=x[test],
        # The reference is the book the model serves: every row but the held-out test rows
        # (labelled customers alone are a selected sample: drift would flag the selection).
        training_x=np.delete(x, test, axis=0), wealth=model, metrics=metrics,
        training_data=training_data,
        label=f"wallet wealth, {source or 'table'}, seed {seed}", created_at=created_at,
    )
