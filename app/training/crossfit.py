"""Honest model fitting: K-fold CV picks the settings and the number of trees, out-of-fold
predictions train the calibrator (binary) or give honest residuals (regression), and the
final model is refitted on every training row.

1. The training rows (never the test slice) are cut into K stratified folds.
2. For each candidate setting of a small grid, `lightgbm.cv` boosts the K fold models together
   with early stopping on the mean validation log loss: that fixes the number of trees.
3. The candidate with the lowest out-of-fold log loss wins; its K fold models, cut at that
   number of trees, give each training row a prediction from a model that never saw it (OOF).
4. The final model is refitted on all training rows with the winning setting and number of
   trees; the calibrator is fitted on the OOF predictions (see calibration.py).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np

from app.features.spec import FeatureSpec
from app.training import lgbm
from app.training.metrics import auc, binary_log_loss

DEFAULT_FOLDS = 5
MAX_ROUNDS = 1000
EARLY_STOPPING = 50
# The grid for tables up to GRID_MAX_ROWS rows (a bank's own extract, ~1k-50k customers):
# shallow to medium trees, leaf sizes and L2 that matter at this size; 0.05 learning rate.
GRID: dict[str, tuple[Any, ...]] = {
    "num_leaves": (4, 7, 15, 31),
    "min_data_in_leaf": (20, 80),
    "lambda_l2": (1.0, 10.0),
}
GRID_MAX_ROWS = 50_000


@dataclass
class CVResult:
    """The winning setting, its number of trees and out-of-fold raw scores; every candidate."""

    params: dict[str, Any]
    trees: int
    oof_raw: np.ndarray
    folds: int
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {"folds": self.folds, "trees": self.trees,
                "chosen": {k: self.params[k] for k in GRID if k in self.params}
                | {"learning_rate": self.params["learning_rate"]},
                "candidates": self.candidates}


def stratified_folds(y: np.ndarray, k: int, seed: int, *, classes: bool = True) -> np.ndarray:
    """A fold number 0..k-1 per row, each class spread evenly over the folds (with
    `classes=False`, for a continuous target: a plain seeded shuffle)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
    fold = np.empty(len(y), dtype=int)
    if not classes:
        fold[rng.permutation(len(y))] = np.arange(len(y)) % k
        return fold
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        fold[rng.permutation(rows)] = np.arange(len(rows)) % k
    return fold


def grid(n_rows: int, base: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Candidate settings: the GRID for small tables, else just `base` (or the defaults)."""
    if n_rows > GRID_MAX_ROWS:
        return [dict(base or {})]
    keys = list(GRID)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(
        *(GRID[k] for k in keys))]


def cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    specs: Sequence[FeatureSpec],
    *,
    seed: int,
    folds: int = DEFAULT_FOLDS,
    candidates: Sequence[Mapping[str, Any]] | None = None,
    max_rounds: int = MAX_ROUNDS,
    early_stopping: int = EARLY_STOPPING,
    learning_rate: float = 0.05,
    num_threads: int = lgbm.DEFAULT_THREADS,
    progress: bool = False,
    desc: str = "cv",
    objective: str = "binary",
) -> CVResult:
    """K-fold CV over `candidates` (default: `grid(len(y))`); see the module docstring.

    `objective` "binary" (OOF log loss decides; `oof_raw` are raw scores) or "regression"
    (OOF mean squared error decides; `oof_raw` are predictions, e.g. of log1p(wealth))."""
    if folds < 2:
        raise ValueError("--folds must be at least 2")
    binary = objective == "binary"
    fold = stratified_folds(y, folds, seed, classes=binary)
    splits = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(folds)]
    best: CVResult | None = None
    best_loss = np.inf
    reports = []
    for i, cand in enumerate(candidates if candidates is not None else grid(len(y))):
        params = lgbm.lgb_params(objective, seed=seed, num_threads=num_threads,
                                 **{"learning_rate": learning_rate, **dict(cand),
                                    "metric": "binary_logloss" if binary else "l2"})
        train = lgbm.dataset(x, y, specs, params)
        res = lgb.cv(params, train, num_boost_round=max_rounds, folds=splits,
                     callbacks=[lgb.early_stopping(early_stopping, verbose=False)],
                     return_cvbooster=True, seed=seed)
        cvb = res["cvbooster"]
        assert isinstance(cvb, lgb.CVBooster)
        trees = max(1, int(cvb.best_iteration))
        oof = np.empty(len(y))
        for booster, (_, rows) in zip(cvb.boosters, splits, strict=True):
            oof[rows] = booster.predict(x[rows], raw_score=True, num_iteration=trees)
        if binary:
            p = 1.0 / (1.0 + np.exp(-oof))
            loss = binary_log_loss(y, p)
            scores = {"oof_log_loss": round(loss, 6), "oof_auc": round(auc(y, p), 6)}
        else:
            loss = float(np.mean((y - oof) ** 2))
            scores = {"oof_mse": round(loss, 6)}
        reports.append({**dict(cand), "trees": trees, **scores})
        if progress:
            sys.stderr.write(f"{desc} {i + 1}: {dict(cand)} → {trees} trees, OOF "
                             f"{'log loss' if binary else 'MSE'} {loss:.5f}\n")
        if loss < best_loss:
            best_loss = loss
            best = CVResult(params=params, trees=trees, oof_raw=oof, folds=folds)
    assert best is not None
    best.candidates = reports
    return best


def refit(x: np.ndarray, y: np.ndarray, specs: Sequence[FeatureSpec], cv: CVResult, *,
          desc: str, progress: bool = False) -> lgb.Booster:
    """The final model: the winning setting on every training row, the CV'd number of trees."""
    params = {k: v for k, v in cv.params.items() if k != "metric"}
    return lgbm.fit(lgbm.dataset(x, y, specs, params), params, cv.trees, desc=desc,
                    progress=progress)
