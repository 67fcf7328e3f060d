"""K-fold CV, out-of-fold predictions and refit (crossfit.py); intervals (metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from app.features.spec import FeatureSpec
from app.training import crossfit
from app.training.metrics import (
    auc_interval,
    binary_metrics_ci,
    bootstrap_intervals,
    wilson_interval,
)

SPECS = [FeatureSpec(name=f"x{i}", kind="number") for i in range(3)]


def _data(n: int = 1200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))).astype(float)
    return x, y


def test_stratified_folds_spread_each_class_evenly():
    y = np.array([1.0] * 100 + [0.0] * 900)
    fold = crossfit.stratified_folds(y, 5, seed=3)
    for k in range(5):
        assert (y[fold == k] == 1).sum() == 20 and (fold == k).sum() == 200
    assert not np.array_equal(fold, crossfit.stratified_folds(y, 5, seed=4))
    cont = crossfit.stratified_folds(np.arange(10.0), 5, seed=0, classes=False)
    assert sorted(np.bincount(cont)) == [2] * 5


def test_out_of_fold_scores_come_from_models_that_did_not_see_the_row():
    x, y = _data()
    cv = crossfit.cross_validate(x, y, SPECS, seed=0, folds=4,
                                 candidates=[{"num_leaves": 31, "min_data_in_leaf": 5}])
    final = crossfit.refit(x, y, SPECS, cv, desc="t")
    assert final.num_trees() == cv.trees
    in_sample = roc_auc_score(y, final.predict(x, raw_score=True))
    oof = roc_auc_score(y, cv.oof_raw)
    # a flexible model scores its own training rows better than rows it never saw
    assert oof < in_sample - 0.02
    assert cv.report()["candidates"][0]["oof_auc"] == pytest.approx(oof, abs=1e-6)


def test_the_grid_picks_the_lowest_out_of_fold_log_loss():
    x, y = _data(800)
    cands = [{"num_leaves": 4, "min_data_in_leaf": 20}, {"num_leaves": 63, "min_data_in_leaf": 2}]
    cv = crossfit.cross_validate(x, y, SPECS, seed=1, folds=3, candidates=cands)
    losses = [c["oof_log_loss"] for c in cv.candidates]
    assert cv.params["num_leaves"] == cands[int(np.argmin(losses))]["num_leaves"]
    assert len(crossfit.grid(10_000)) == 16 and len(crossfit.grid(10**6, {"a": 1})) == 1


def test_regression_cross_validation():
    x, _ = _data(900)
    target = 2 * x[:, 0] + np.random.default_rng(2).normal(0, 0.5, len(x))
    cv = crossfit.cross_validate(x, target, SPECS, seed=0, folds=3, objective="regression",
                                 candidates=[{"num_leaves": 7}])
    residual = target - cv.oof_raw
    assert 0.4 < residual.std() < 0.5 * target.std() and "oof_mse" in cv.candidates[0]


def test_delong_interval_matches_the_bootstrap_spread():
    x, y = _data(2000, seed=5)
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))
    lo, hi = auc_interval(y, p)
    value = roc_auc_score(y, p)
    assert lo < value < hi
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(300):
        idx = rng.integers(0, len(y), len(y))
        boot.append(roc_auc_score(y[idx], p[idx]))
    assert (hi - lo) == pytest.approx(np.quantile(boot, 0.975) - np.quantile(boot, 0.025),
                                      rel=0.25)
    assert auc_interval(np.array([1.0, 0, 0]), np.array([0.1, 0.2, 0.3])) is None


def test_wilson_and_bootstrap_intervals():
    lo, hi = wilson_interval(20, 100)
    assert lo == pytest.approx(0.1334, abs=1e-3) and hi == pytest.approx(0.2888, abs=1e-3)
    assert wilson_interval(0, 0) is None
    x, y = _data(1000, seed=6)
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))
    ci = bootstrap_intervals(y, p, reps=200)
    assert ci["log_loss"][0] < ci["log_loss"][1] and ci["ece"][0] >= 0
    m = binary_metrics_ci(y, p)
    assert m["n"] == 1000 and m["positives"] == int(y.sum())
    assert m["intervals_95"]["log_loss"][0] < m["log_loss"] < m["intervals_95"]["log_loss"][1]
