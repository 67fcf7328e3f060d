"""Churn calibrators fitted on held-out rows: isotonic on the probability, Platt on the raw score.

Both are fitted; the one with the lower log loss in a 2-fold cross-fit on the calibration
slice is kept and refitted on the whole slice. The test slice plays no part in the choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from app.bundles.manifest import Calibrator, IsotonicCalibrator, PlattCalibrator
from app.scoring.families import calibrate
from app.training.metrics import binary_log_loss

# Keep calibrated probabilities off exact 0 and 1: "certain to stay" is never true.
P_FLOOR = 1e-4


def fit_isotonic(probability: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
    """Isotonic regression of the label on the model probability, as interpolation points."""
    iso = IsotonicRegression(out_of_bounds="clip", y_min=P_FLOOR, y_max=1 - P_FLOOR)
    iso.fit(probability, y)
    x = np.asarray(iso.X_thresholds_, dtype=float)
    fitted = np.maximum.accumulate(np.asarray(iso.y_thresholds_, dtype=float))
    return IsotonicCalibrator(x=tuple(x.tolist()), y=tuple(fitted.tolist()))


def fit_platt(raw: np.ndarray, y: np.ndarray) -> PlattCalibrator:
    """Logistic regression of the label on the raw score: p = 1 / (1 + exp(a·raw + b))."""
    lr = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
    lr.fit(raw.reshape(-1, 1), y)
    return PlattCalibrator(a=-float(lr.coef_[0, 0]), b=-float(lr.intercept_[0]))


def _fit(method: str, raw: np.ndarray, p: np.ndarray, y: np.ndarray) -> Calibrator:
    return fit_isotonic(p, y) if method == "isotonic" else fit_platt(raw, y)


def choose_calibrator(
    raw: np.ndarray, probability: np.ndarray, y: np.ndarray, *, seed: int
) -> tuple[Calibrator, dict[str, Any]]:
    """The better of isotonic and Platt by 2-fold cross-fitted log loss, refitted on all rows."""
    fold = np.random.default_rng(np.random.SeedSequence([seed, 11])).permutation(len(y)) % 2
    scores: dict[str, float] = {}
    for method in ("isotonic", "platt"):
        pred = np.empty(len(y))
        for k in (0, 1):
            fit_rows, eval_rows = fold != k, fold == k
            cal = _fit(method, raw[fit_rows], probability[fit_rows], y[fit_rows])
            pred[eval_rows] = calibrate(cal, raw[eval_rows], probability[eval_rows])
        scores[method] = binary_log_loss(y, pred)
    chosen = min(scores, key=lambda m: (scores[m], m))
    report = {
        "chosen": chosen,
        "rows": len(y),
        "cross_fit_log_loss": {m: round(v, 6) for m, v in scores.items()},
    }
    return _fit(chosen, raw, probability, y), report


def both_calibrators(raw: np.ndarray, probability: np.ndarray,
                     y: np.ndarray) -> dict[str, Calibrator]:
    """Isotonic and Platt fitted on the same rows (to report both on the test slice)."""
    return {m: _fit(m, raw, probability, y) for m in ("isotonic", "platt")}
