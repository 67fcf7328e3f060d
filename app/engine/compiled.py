"""The checked choice of evaluator: the tree walker when it matches Booster.predict on probe
rows, else plain Booster.predict (logging once), so a broken fast path can never serve.

It falls back when no compiler is available, the build fails, a model uses something the
walker does not support (linear trees, random-forest averaging, very large trees) or the
check fails.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from app.engine.evaluate import BoosterEvaluator, Evaluator, ModelLayout, RawScores
from app.engine.model_text import UnsupportedModelError
from app.engine.native import BuildError, warn_once
from app.engine.walker import TreeWalkEvaluator
from app.features.schema import FeatureSchema

log = logging.getLogger("tierwise.scoring")

# Largest difference from Booster.predict accepted by the self-check (the walker is exact).
TOLERANCE = 1e-9


def probe_rows(schema: FeatureSchema, n: int, *, seed: int = 0,
               thresholds: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Rows that exercise every branch kind: NaN, zeros, tiny values, out-of-range values,
    every category code (and invalid ones), and values exactly at and next to split
    thresholds when `thresholds` (schema column → values) is given."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, len(schema)))
    for j, spec in enumerate(schema.specs):
        if spec.kind == "category":
            k = len(spec.categories)
            codes = np.arange(k, dtype=np.float64)
            odd = np.array([-1.0, -0.5, k, k + 0.5, 31.0, 32.0, 1e10, -1e10, math.inf])
            col = np.where(rng.random(n) < 0.9, rng.choice(codes, n), rng.choice(odd, n))
            col[: min(n, k)] = codes[: min(n, k)]
        elif spec.kind == "boolean":
            col = rng.choice(np.array([0.0, 1.0, -1.0, 2.0, 0.5]), n, p=[.45, .45, .04, .03, .03])
        else:
            lo = spec.minimum if spec.minimum is not None else -1e6
            hi = spec.maximum if spec.maximum is not None else 1e6
            span = hi - lo
            uniform = lo + rng.random(n) * span
            logscale = np.sign(rng.random(n) - 0.3) * np.exp(rng.uniform(-5, math.log1p(abs(hi)),
                                                                          n))
            col = np.where(rng.random(n) < 0.5, uniform, logscale)
            if spec.kind == "integer":
                col = np.round(col)
            z = float(np.float32(1e-35))  # LightGBM's kZeroThreshold, and next to it
            odd = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-300, z, -z, np.nextafter(z, 1),
                            -np.nextafter(z, 1), lo - 1, hi + 1, lo - span, hi + span, 1e300,
                            -1e300, math.inf, -math.inf])
            col = np.where(rng.random(n) < 0.1, rng.choice(odd, n), col)
            if thresholds and j in thresholds and len(thresholds[j]):
                t = rng.choice(thresholds[j], n)
                t = np.where(rng.random(n) < 0.5, t,
                             np.nextafter(t, np.where(rng.random(n) < 0.5, -np.inf, np.inf)))
                col = np.where(rng.random(n) < 0.3, t, col)
        col[rng.random(n) < 0.1] = math.nan
        x[:, j] = col
    return x


def max_difference(a: RawScores, b: RawScores) -> float:
    """Largest absolute difference between two results (inf when their shapes differ)."""
    worst = 0.0
    for u, v in ((a.tier, b.tier), (a.churn, b.churn), (a.products, b.products)):
        if u is None and v is None:
            continue
        if u is None or v is None or np.shape(u) != np.shape(v):
            return math.inf
        if u.size:
            same = (u == v) | (np.isnan(u) & np.isnan(v))
            if not same.all():
                d = np.abs(np.asarray(u, dtype=float) - np.asarray(v, dtype=float))[~same]
                worst = max(worst, float(np.nan_to_num(d, nan=math.inf).max()))
    return worst


def check_against_booster(evaluator: Evaluator, layout: ModelLayout, *, rows: int = 512,
                          seed: int = 0) -> float:
    """Max |difference| from BoosterEvaluator on probe rows, all parts, batch and single row."""
    thresholds = getattr(getattr(evaluator, "flat", None), "thresholds", None)
    x = probe_rows(layout.schema, rows, seed=seed, thresholds=thresholds)
    ref = BoosterEvaluator(layout).raw(x, tier=True, churn=True, products=True)
    worst = max_difference(evaluator.raw(x, tier=True, churn=True, products=True), ref)
    for i in range(min(rows, 8)):
        one = evaluator.raw(x[i:i + 1], tier=True, churn=True, products=True)
        ref_one = RawScores(
            tier=None if ref.tier is None else ref.tier[i:i + 1],
            churn=None if ref.churn is None else ref.churn[i:i + 1],
            products=None if ref.products is None else ref.products[i:i + 1],
        )
        worst = max(worst, max_difference(one, ref_one))
    return worst


def fastest_evaluator(layout: ModelLayout, *, cache_dir: Path | None,
                      cc: str | None = None) -> Evaluator:
    """The fastest evaluator that works here and matches Booster.predict on probe rows.

    Falls back to BoosterEvaluator (logging a warning once per reason) when the walker
    cannot be built or does not agree; never raises for those reasons.
    """
    try:
        fast = TreeWalkEvaluator(layout, cache_dir=cache_dir, cc=cc)
        diff = check_against_booster(fast, layout)
    except BuildError as exc:
        warn_once("build", "compiled tree evaluation unavailable, using plain LightGBM: %s", exc)
        return BoosterEvaluator(layout)
    except UnsupportedModelError as exc:
        warn_once(f"unsupported:{exc}", "a model is not supported by the tree walker, using "
                   "plain LightGBM: %s", exc)
        return BoosterEvaluator(layout)
    except Exception as exc:  # a fast path must never stop a context from serving
        log.exception("the tree walker failed, using plain LightGBM: %s", exc)
        return BoosterEvaluator(layout)
    if not diff <= TOLERANCE:
        warn_once("mismatch", "the tree walker differs from LightGBM by %g on probe rows, "
                   "using plain LightGBM", diff)
        return BoosterEvaluator(layout)
    return fast


def evaluator_info(evaluator: Evaluator) -> tuple[str, str]:
    """(evaluator, kernels) for status and metrics: ("treewalk", "avx512" / "avx2" / "walk")
    or ("lightgbm", "none")."""
    return evaluator.name, str(getattr(evaluator, "isa", "none"))
