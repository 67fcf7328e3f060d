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


# ---------------------------------------------------------------- 95% intervals
#
# AUC: DeLong's variance (exact for the Mann-Whitney statistic), normal interval clipped to
# [0, 1]. ECE, log loss and Brier: percentile bootstrap over test rows (BOOTSTRAP_REPS
# resamples, fixed seed). The bootstrap ECE interval is conservative on the high side: ECE of
# a resample carries extra binning noise. Rates (base rate): Wilson score interval.

BOOTSTRAP_REPS = 1000
Z95 = 1.959964


def auc_interval(y: np.ndarray, p: np.ndarray) -> tuple[float, float] | None:
    """DeLong 95% interval of the ROC AUC (None with a single class)."""
    from scipy.stats import rankdata

    pos, neg = p[y == 1], p[y == 0]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        return None
    tz = rankdata(np.concatenate([pos, neg]))
    tx, ty = rankdata(pos), rankdata(neg)
    value = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v01 = (tz[:m] - tx) / n
    v10 = 1.0 - (tz[m:] - ty) / m
    se = float(np.sqrt(v01.var(ddof=1) / m + v10.var(ddof=1) / n))
    return max(0.0, value - Z95 * se), min(1.0, value + Z95 * se)


def wilson_interval(k: int, n: int) -> tuple[float, float] | None:
    """Wilson 95% interval of a proportion k/n."""
    if n == 0:
        return None
    phat = k / n
    denom = 1 + Z95**2 / n
    centre = (phat + Z95**2 / (2 * n)) / denom
    half = Z95 * np.sqrt(phat * (1 - phat) / n + Z95**2 / (4 * n * n)) / denom
    return float(centre - half), float(centre + half)


def bootstrap_intervals(y: np.ndarray, p: np.ndarray, *, seed: int = 0,
                        reps: int = BOOTSTRAP_REPS) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap 95% intervals of ECE, log loss and Brier."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 23]))
    out: dict[str, list[float]] = {"ece": [], "log_loss": [], "brier": []}
    n = len(y)
    for _ in range(reps):
        idx = rng.integers(0, n, n)
        yb, pb = y[idx], p[idx]
        out["ece"].append(expected_calibration_error(yb, pb))
        out["log_loss"].append(binary_log_loss(yb, pb))
        out["brier"].append(brier(yb, pb))
    return {k: (float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975)))
            for k, v in out.items()}


def _pair(ci: tuple[float, float] | None) -> list[float | None] | None:
    return None if ci is None else [_r(ci[0]), _r(ci[1])]


def binary_metrics_ci(y: np.ndarray, p: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """binary_metrics plus the sample (n, positives) and 95% intervals of each measure."""
    boot = bootstrap_intervals(y, p, seed=seed)
    positives = int(np.sum(y == 1))
    return {
        **binary_metrics(y, p),
        "n": len(y),
        "positives": positives,
        "intervals_95": {
            "auc": _pair(auc_interval(y, p)),
            "ece": _pair(boot["ece"]),
            "log_loss": _pair(boot["log_loss"]),
            "brier": _pair(boot["brier"]),
            "base_rate": _pair(wilson_interval(positives, len(y))),
        },
        "interval_methods": {"auc": "DeLong", "ece": "bootstrap", "log_loss": "bootstrap",
                             "brier": "bootstrap", "base_rate": "Wilson"},
    }


def product_metrics_ci(y: np.ndarray, p: np.ndarray, share: float = 0.05) -> dict[str, Any]:
    """product_metrics plus n, positives and the DeLong 95% interval of the AUC."""
    return {**product_metrics(y, p, share), "n": len(y), "positives": int(np.sum(y == 1)),
            "auc_95": _pair(auc_interval(y, p))}
