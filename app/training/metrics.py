"""Model quality measures written into bundle manifests (all on held-out rows).

Definitions (docs/training.md repeats them):
- AUC: area under the ROC curve; 0.5 is a coin, 1.0 ranks every positive first.
- log loss: mean of -[y log p + (1-y) log(1-p)], p clipped to [1e-15, 1-1e-15].
- Brier: mean of (p - y)^2.
- ECE (expected calibration error): cut [0, 1] into ECE_BINS equal-width bins (the last
  one closed), ECE = Σ_b (n_b / N) · |mean(y in b) − mean(p in b)|, empty bins skipped.
  A 0.01 ECE means predicted and observed rates differ by one point on average.
- precision@k: share of positives among the k customers with the highest score, next to
  the base rate (their ratio is the lift).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

ECE_BINS = 10
EPS = 1e-15


def _r(x: float, digits: int = 6) -> float | None:
    """A JSON-safe rounded float (None for NaN)."""
    x = float(x)
    return None if not np.isfinite(x) else round(x, digits)


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC, NaN when only one class is present."""
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def binary_log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy."""
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the probability."""
    return float(np.mean((p - y) ** 2))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over `bins` equal-width probability bins (see the module docstring)."""
    idx = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    n = np.bincount(idx, minlength=bins)
    sum_y = np.bincount(idx, weights=y, minlength=bins)
    sum_p = np.bincount(idx, weights=p, minlength=bins)
    used = n > 0
    return float(np.sum(np.abs(sum_y[used] - sum_p[used])) / max(len(p), 1))


def reliability(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Per bin: rows, mean predicted and observed rate (the reliability diagram)."""
    idx = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        if sel.any():
            out.append({"bin": [b / bins, (b + 1) / bins], "rows": int(sel.sum()),
                        "predicted": _r(p[sel].mean()), "observed": _r(y[sel].mean())})
    return out


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """AUC, log loss, Brier and ECE of probabilities `p` for 0/1 labels `y`."""
    return {
        "auc": _r(auc(y, p)),
        "log_loss": _r(binary_log_loss(y, p)),
        "brier": _r(brier(y, p)),
        "ece": _r(expected_calibration_error(y, p)),
    }


def precision_at_k(y: np.ndarray, score: np.ndarray, share: float = 0.05) -> float:
    """Share of positives among the top `share` of rows by score (ties broken by row order)."""
    k = max(1, round(len(score) * share))
    top = np.argsort(-score, kind="stable")[:k]
    return float(np.mean(y[top]))


def product_metrics(y: np.ndarray, p: np.ndarray, share: float = 0.05) -> dict[str, Any]:
    """AUC, precision@top-`share` and its lift over the base rate."""
    base = float(np.mean(y))
    prec = precision_at_k(y, p, share)
    return {
        "auc": _r(auc(y, p)),
        "log_loss": _r(binary_log_loss(y, p)),
        "base_rate": _r(base),
        "top_share": share,
        "precision_at_top": _r(prec),
        "lift_at_top": _r(prec / base) if base > 0 else None,
    }


def multiclass_metrics(y: np.ndarray, proba: np.ndarray,
                       classes: Sequence[str]) -> dict[str, Any]:
    """Per-class precision/recall/F1, macro-F1, accuracy and log loss of class probabilities."""
    pred = np.argmax(proba, axis=1)
    out: dict[str, Any] = {"per_class": _per_class(y, pred, classes)}
    out["macro_f1"] = _r(np.mean([c["f1"] for c in out["per_class"].values()]))
    out["accuracy"] = _r(np.mean(pred == y))
    picked = np.clip(proba[np.arange(len(y)), y.astype(int)], EPS, 1.0)
    out["log_loss"] = _r(-np.mean(np.log(picked)))
    return out


def class_prediction_metrics(y: np.ndarray, pred: np.ndarray,
                             classes: Sequence[str]) -> dict[str, Any]:
    """Macro-F1 and accuracy of hard predictions (for baselines without probabilities)."""
    per = _per_class(y, pred, classes)
    return {"macro_f1": _r(np.mean([c["f1"] for c in per.values()])),
            "accuracy": _r(np.mean(pred == y)), "per_class": per}


def _per_class(y: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    per: dict[str, Any] = {}
    for k, name in enumerate(classes):
        tp = float(np.sum((pred == k) & (y == k)))
        predicted, actual = float(np.sum(pred == k)), float(np.sum(y == k))
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per[name] = {"precision": _r(precision), "recall": _r(recall), "f1": _r(f1),
                     "support": int(actual)}
    return per
